"""A driver over a fake executor, for hand-computed timelines (no training, no Ray).

Four clients with 100, 200, 300, 400 samples; a 2x2 logistic regression has 6 float32
parameters = 24 bytes = 192 bits, so with 192e-6 Mbit/s links each transfer takes exactly 1 s;
0.01 s per sample. One epoch therefore takes 1 + n/100 + 1 = 3, 4, 5, 6 seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from raysim.models.models import initial_state
from raysim.models.spec import ModelSpec
from raysim.scenario.composition import driver_parts
from raysim.scenario.sections import Scenario, parse_scenario
from raysim.sim.kernel.driver import Driver
from raysim.sim.kernel.evaluation import EvalCounts
from raysim.sim.kernel.executor import Executor
from raysim.sim.kernel.tasks import ClientResult

SIZES = np.array([100, 200, 300, 400])


class FakeExecutor:
    """Returns a delta of +1 per parameter for every task, instantly."""

    def __init__(self):
        self.submitted: list[tuple[int, int, int]] = []  # (version, task id, client id)

    def submit(self, version, params, tasks, costs):
        self.submitted += [(version, t.task_id, t.client_id) for t in tasks]
        self._size = len(params)
        self._epochs = {t.task_id: t.epochs for t in tasks}

    def result(self, task_id):
        client = next(c for _, t, c in self.submitted if t == task_id)
        return ClientResult(task_id=task_id, client_id=client, num_samples=int(SIZES[client]),
                            steps=self._epochs.get(task_id, 1), mean_loss=1.0,
                            delta=np.ones(self._size, dtype=np.float32), wall_s=0.0)

    def forget(self, task_ids):
        pass

    def evaluate(self, params, slices):
        return [EvalCounts(count=len(s.indices), sums={"correct": 0, "loss": 0.0, "count": len(s.indices)}) for s in slices]

    def shutdown(self):
        pass


def tiny_driver(scenario: Scenario, executor_factory: Callable[[], Executor]) -> Driver:
    """A driver of a 2x2 logistic regression (6 parameters) on the clients of ``SIZES``."""
    params, layout = initial_state(ModelSpec("logreg", (2,), 2), seed=0)
    parts = driver_parts(scenario, layout=layout, num_classes=2, num_clients=len(SIZES), client_sizes=SIZES)
    return Driver(parts, initial_params=params, layout=layout, client_sizes=SIZES, test_size=1,
                  executor_factory=executor_factory)


def write_trace(path: Path, availability: dict[int, str] | None = None) -> Path:
    availability = availability or {}
    rows = ["client_id,seconds_per_sample,downlink_mbps,uplink_mbps,latency_s,availability"]
    rows += [f"{c},0.01,192e-6,192e-6,0,{availability.get(c, '')}" for c in range(len(SIZES))]
    path.write_text("\n".join(rows) + "\n")
    return path


def make_driver(tmp_path: Path, *, policy: dict, rounds: int = 1, per_round: int = 4, epochs: int = 1,
                availability: dict[int, str] | None = None, **sections: dict) -> tuple[Driver, FakeExecutor]:
    """A driver on the four-client trace; ``sections`` add scenario sections (e.g. privacy)."""
    trace = write_trace(tmp_path / "trace.csv", availability)
    scenario = parse_scenario({
        **sections,
        "run": {"name": "timeline", "rounds": rounds, "executor": "local"},
        "data": {"dataset": "fashion_mnist", "num_clients": len(SIZES)},
        "client": {"epochs": epochs},
        "selection": {"clients_per_round": per_round},
        "policy": policy,
        "system": {"trace": str(trace)},
    })
    executor = FakeExecutor()
    driver = tiny_driver(scenario, lambda: executor)
    return driver, executor


def run_all(driver: Driver) -> list:
    reports = []
    while batch := driver.advance():
        reports += batch
    return reports


def by_client(report) -> dict[int, dict]:
    return {row["client_id"]: row for row in report.client_rows}
