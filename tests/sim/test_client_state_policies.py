"""A client's state is the client's (sim/state/client_state.py): kept when its task finishes, whatever
the server does with the update, so the client's next task starts from it under every policy,
with every state spilled to disk and across a resume. ``tests.user_code:CountingSGD`` counts
its trainings in its state and reports the count as ``metric_seen``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raysim.api import StartupPhases, _LocalDriver, run
from raysim.scenario.preparation import prepare
from raysim.sim.kernel.tasks import ClientError
from tests.conftest import whole_and_resumed

COUNTING = {"algorithm": "tests.user_code:CountingSGD"}
# unequal devices, some dropping out, so clients finish out of order and are selected again
# while an earlier update of theirs waits in a buffer or is discarded
SYSTEM = {"seconds_per_sample": 0.01, "speed_distribution": "lognormal", "speed_sigma": 0.5,
          "slow_fraction": 0.25, "slow_factor": 5.0, "dropout": 0.1}
POLICIES = {
    "sync": {"kind": "sync"},
    "deadline": {"kind": "sync", "deadline_s": 2.0},
    "periodic": {"kind": "periodic", "period_s": 1.5},
    "hybrid": {"kind": "hybrid", "min_updates": 2, "deadline_s": 1.5, "late_updates": "drop"},
    "fedasync": {"kind": "async", "mode": "fedasync"},
    "fedbuff": {"kind": "async", "mode": "fedbuff", "buffer_size": 3},
    "event": {"kind": "event", "threshold": 0.6},
}
FINISHED = ("applied", "discarded", "suppressed")  # the statuses of a task its client finished


def _counting(tiny, policy: dict, **run):
    return tiny(run={"rounds": 8, **run}, client=COUNTING, system=SYSTEM, policy=policy,
                resources={"client_state_mb": 0.0})


def _counts(rows: pd.DataFrame) -> dict[int, list[int]]:
    """Each client's counts in the order its finished tasks were dispatched."""
    done = rows[rows.status.isin(FINISHED)].sort_values("task_id")
    return {int(c): group.metric_seen.astype(int).tolist() for c, group in done.groupby("client_id")}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_finished_task_starts_from_the_clients_last_one_under_every_policy(tiny, name):
    scenario = _counting(tiny, POLICIES[name])
    local = _LocalDriver(scenario, prepare(scenario), StartupPhases(0.0))
    try:
        rows = [row for batch in iter(local.advance, []) for report in batch for row in report.client_rows]
        driver = local.driver
        # tasks that finished after the last server step have no row, but their clients kept the count
        rows += [{"task_id": t.info.task_id, "client_id": t.info.client_id, "status": "applied",
                  "metric_seen": t.result["metric_seen"]} for t in driver.tasks.values() if t.fetched is not None]
        counts = _counts(pd.DataFrame(rows))
        assert counts and sum(map(len, counts.values())) >= 8
        for client in range(8):
            seen = counts.get(client, [])
            assert seen == list(range(1, len(seen) + 1)), (name, client, seen)  # no repeats, none skipped
            stored = driver.clients.algorithm_state(client).get("seen")
            assert (0 if stored is None else int(stored[0])) == len(seen), (name, client)
    finally:
        local.close()


def test_a_client_selected_again_while_its_update_waits_starts_from_that_update(tiny):
    """FedBuff: a client whose update waits in the buffer is selected again (the case that lost a
    count before); both updates are applied in one step, counting 1 and 2."""
    scenario = _counting(tiny, POLICIES["fedbuff"])
    local = _LocalDriver(scenario, prepare(scenario), StartupPhases(0.0))
    try:
        rows = pd.DataFrame([row for batch in iter(local.advance, []) for report in batch for row in report.client_rows])
    finally:
        local.close()
    applied = rows[rows.status == "applied"]
    twice = applied[applied.duplicated(["round", "client_id"], keep=False)].sort_values("task_id")
    assert len(twice) >= 2
    for _, group in twice.groupby(["round", "client_id"]):
        assert group.metric_seen.astype(int).diff().dropna().eq(1).all()


@pytest.mark.parametrize("name", ["fedbuff", "hybrid", "event"])
def test_a_resumed_asynchronous_run_ends_as_an_uninterrupted_one(tiny, tmp_path, name):
    scenario = _counting(tiny, POLICIES[name], rounds=6, checkpoint_every=1)
    whole, resumed = whole_and_resumed(scenario, tmp_path, after=3)
    tables = [pd.read_parquet(folder / "clients.parquet").drop(columns="wall_train_s") for folder in (whole, resumed)]
    pd.testing.assert_frame_equal(*tables)
    for client, seen in _counts(tables[1]).items():
        assert seen == list(range(1, len(seen) + 1)), (client, seen)
    rounds = [pd.read_parquet(folder / "rounds.parquet") for folder in (whole, resumed)]
    np.testing.assert_array_equal(rounds[0].test_accuracy, rounds[1].test_accuracy)


class WritesItsStateInPlace:
    """The mistake read-only state arrays catch: changing the stored state instead of returning it."""

    def train(self, task):
        from raysim.models.algorithm import LocalResult

        if "seen" in task.state:
            task.state["seen"] += 1
        return LocalResult(steps=0, loss=0.0, state={"seen": np.ones(1, dtype=np.int64)})


def test_an_algorithm_that_writes_its_state_in_place_fails_naming_it(tiny, tmp_path):
    scenario = tiny(client={"algorithm": f"{__name__}:WritesItsStateInPlace"}, selection={"clients_per_round": 8})
    with pytest.raises(ClientError, match="read-only"):
        run(scenario, results_root=tmp_path)
