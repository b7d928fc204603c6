"""The driver built from plain parts, with no scenario, no Ray and no torch: a fake executor
whose clients each pull the model towards their own point, so losses differ by client and a
selector that learns from them has something to learn.

The parts are what ``scenario/composition.py`` builds; here each is made by hand, which is how
a new part (a selector, a stage) is tested against the real driver loop."""

from __future__ import annotations

import numpy as np
import pytest

from raysim.algorithms.server_opt import make_server_optimizer
from raysim.algorithms.strategy import Strategy
from raysim.models.layout import ParamLayout
from raysim.sim.cost.devices import Population, SystemConfig
from raysim.sim.kernel.driver import Driver
from raysim.sim.kernel.evaluation import EvalCounts
from raysim.sim.kernel.parts import ClientSchedule, DriverParts, RunLimits
from raysim.sim.policies import SyncPolicy
from raysim.sim.selection import PowerOfChoice
from raysim.sim.kernel.tasks import ClientResult

SIZE, CLIENTS = 4, 8
TARGETS = np.arange(CLIENTS, dtype=np.float64)  # client c pulls every weight towards c


class PullingExecutor:
    """Each task moves the model halfway to its client's target; its loss is the squared distance."""

    def __init__(self):
        self.pending: dict[int, ClientResult] = {}

    def submit(self, version, params, tasks, costs) -> None:
        for task in tasks:
            target = TARGETS[task.client_id]
            loss = float(np.mean((params - target) ** 2))
            self.pending[task.task_id] = ClientResult(
                task_id=task.task_id, client_id=task.client_id, num_samples=10, steps=1, mean_loss=loss,
                delta=(0.5 * (target - params)).astype(np.float64), wall_s=0.0)

    def result(self, task_id):
        return self.pending.pop(task_id)

    def forget(self, task_ids) -> None:
        for task_id in task_ids:
            self.pending.pop(task_id, None)

    def evaluate(self, params, slices):
        return [EvalCounts(count=len(s.indices), sums={"correct": 0, "loss": float(np.sum(params ** 2)) * len(s.indices),
                                                      "count": len(s.indices)}) for s in slices]

    def evaluate_models(self, models, slices):
        return [self.evaluate(m, slices) for m in models]

    def shutdown(self) -> None:
        pass


def driver(selector=None, rounds: int = 3, stages: tuple = ()) -> Driver:
    extra = {"stages": stages} if selector is None else {"selector": selector, "stages": stages}
    parts = DriverParts(
        policy=SyncPolicy().build(), strategy=Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0)),
        population=Population(SystemConfig(), CLIENTS, seed=0), clients_per_round=2,
        limits=RunLimits(rounds=rounds), schedule=ClientSchedule(epochs=1), seed=0, exchange_bytes=4 * SIZE, **extra)
    return Driver(parts, initial_params=np.zeros(SIZE, dtype=np.float32),
                  layout=ParamLayout(names=("w",), shapes=((SIZE,),), num_trainable=SIZE),
                  client_sizes=np.full(CLIENTS, 10), test_size=20, executor_factory=PullingExecutor)


def run_rounds(d: Driver) -> list:
    reports = []
    while not d.finished:
        reports += d.advance()
    return reports


def test_the_driver_runs_from_plain_parts():
    reports = run_rounds(driver())
    assert [r.round_row["round"] for r in reports] == [1, 2, 3]
    assert all(len(r.client_rows) == 2 and {row["status"] for row in r.client_rows} == {"applied"} for r in reports)
    assert all(r.round_row["sim_time"] > 0 for r in reports)


def test_power_of_choice_on_the_driver_takes_the_highest_losses_it_heard():
    """Every client a candidate: clients never heard from go first (the first four rounds try
    all 8 once), then each round takes the two highest losses the server last heard."""
    d = driver(PowerOfChoice(d=CLIENTS).build(), rounds=7)
    tried = []
    while not d.finished:
        heard = {c: r.loss for c, r in d.selection.records.items() if r.loss is not None}
        (report,) = d.advance()
        chosen = sorted(row["client_id"] for row in report.client_rows)
        if len(heard) == CLIENTS:
            assert chosen == sorted(sorted(heard, key=lambda c: -heard[c])[:2])
        tried += chosen
    assert sorted(tried[:8]) == list(range(CLIENTS)) and len(tried) == 14


@pytest.mark.parametrize("selector", [None, PowerOfChoice(d=CLIENTS).build()])
def test_a_snapshot_restores_the_selection_too(selector):
    whole = run_rounds(driver(selector, rounds=5))
    cut = driver(selector, rounds=5)
    while cut.round < 2:
        cut.advance()
    resumed = driver(type(selector)(selector.d) if selector is not None else None, rounds=5)
    resumed.restore(cut.snapshot())
    rest = run_rounds(resumed)
    assert [r.round_row["sim_time"] for r in whole[2:]] == [r.round_row["sim_time"] for r in rest]
    assert [sorted(row["client_id"] for row in r.client_rows) for r in whole[2:]] == \
        [sorted(row["client_id"] for row in r.client_rows) for r in rest]
