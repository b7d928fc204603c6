"""Object-store memory sized and released deliberately (runtime/session.py, ray_executor.py): a
local Ray's store is a share of the machine's memory, an actor's work goes in calls of bounded
results, and fetched results are copies whose refs are let go at once, the floats unchanged."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from raysim.algorithms.sgd import SGDConfig
from raysim.models.spec import ModelSpec
from raysim.runtime import ray_executor, session
from raysim.sim.kernel.tasks import ClientIndices, TrainingPlan, TrainTask

GB = 2**30


@pytest.mark.parametrize("total,expected", [(24 * GB, 0.15 * 24 * GB), (4 * GB, GB), (2 * GB, 0.3 * 2 * GB)])
def test_a_local_object_store_is_a_share_of_the_memory(monkeypatch, total, expected):
    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=total))
    assert session.object_store_bytes() == int(expected)


def test_an_actors_groups_go_in_calls_of_bounded_results_never_splitting_a_group(monkeypatch):
    monkeypatch.setattr(ray_executor, "CALL_RESULT_BYTES", 100)
    state = {"control": np.zeros(5, dtype=np.float32)}  # 20 bytes, and a 20-byte delta: 40 a task
    tasks = [TrainTask(i, i, 1, 1, state=state) for i in range(6)]
    groups = [[tasks[0]], [tasks[1], tasks[2], tasks[3]], [tasks[4]], [tasks[5]]]
    calls = ray_executor._calls(groups, [1.0, 3.0, 1.0, 1.0], params_bytes=20)
    assert [[[t.task_id for t in g] for g in call] for call, _ in calls] == [[[0]], [[1, 2, 3]], [[4], [5]]]
    assert [cost for _, cost in calls] == [1.0, 3.0, 2.0]


@pytest.mark.ray
def test_fetched_results_are_copies_and_their_calls_are_let_go(ray_runtime, monkeypatch):
    from raysim.runtime.ray_executor import RayExecutor, start_workers

    rng = np.random.default_rng(0)
    kwargs = dict(model=ModelSpec("logreg", (4,), 2), plan=TrainingPlan(batch_size=5, sgd=SGDConfig(lr=0.1), seed=0),
                  train_x=rng.normal(size=(80, 4)).astype(np.float32), train_y=rng.integers(0, 2, 80),
                  shards=ClientIndices.from_parts([np.arange(i * 10, (i + 1) * 10) for i in range(8)]))
    params = np.linspace(-0.1, 0.1, 10, dtype=np.float32)
    tasks = [TrainTask(i, i, i, 1) for i in range(8)]
    executor = RayExecutor(actors=start_workers(num_actors=2, num_cpus=1, num_gpus=0, worker_kwargs=kwargs),
                           num_cpus=1, num_gpus=0, worker_kwargs=kwargs)
    try:
        deltas = {}
        for limit in (ray_executor.CALL_RESULT_BYTES, 40):  # one call an actor; a call a task (40-byte deltas)
            monkeypatch.setattr(ray_executor, "CALL_RESULT_BYTES", limit)
            executor.submit(0, params, tasks, [10.0] * 8)
            batches = {id(b): b for b in executor._batches.values()}.values()
            assert len(batches) == (2 if limit > 40 else 8)
            results = [executor.result(t.task_id) for t in tasks]
            assert all(b.ref is None and b.groups == [] for b in batches)  # nothing keeps the calls' objects
            assert all(r.delta.flags.writeable and r.delta.flags.owndata for r in results)  # not views into them
            deltas[limit] = np.stack([r.delta for r in results])
        np.testing.assert_array_equal(*deltas.values())
    finally:
        executor.shutdown()
