"""Client state kept where the client trains (runtime/ray_executor.py): an actor trains a client
from the state it holds without being sent it, is sent what it does not hold, and a run's
results do not depend on any of it: bit-identical across packings, the local executor, a resume
and a replaced actor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raysim.algorithms.sgd import SGDConfig
from raysim.api import run
from raysim.models.spec import ModelSpec
from raysim.runtime.ray_executor import StateCache, _spread
from raysim.sim.kernel.tasks import ClientIndices, TrainingPlan, TrainTask
from tests.conftest import whole_and_resumed

SCAFFOLD = {"server": {"strategy": "scaffold", "weighting": "uniform"}}
ROUNDS = ["round", "sim_time", "test_accuracy", "test_loss", "train_loss"]


def test_a_group_goes_to_the_actor_holding_its_states_while_the_loads_stay_even():
    # four equal groups, all preferring actor 0: two go there, the others are balanced away
    load = [0.0, 0.0]
    assert _spread([1.0] * 4, load, [0, 0, 0, 0]) == {0: [0, 1], 1: [2, 3]} and load == [2.0, 2.0]
    # preferences split: each goes home; no preference: least loaded, as without any
    assert _spread([1.0] * 4, [0.0, 0.0], [1, 0, None, 1]) == {1: [0, 3], 0: [1, 2]}
    assert _spread([3.0, 1.0, 2.0], [0.0, 0.0], None) == _spread([3.0, 1.0, 2.0], [0.0, 0.0], [None] * 3)
    # work already in flight counts: the busy actor's clients move
    assert _spread([1.0, 1.0], [4.0, 0.0], [0, 0]) == {1: [0, 1]}


def test_the_cache_holds_the_latest_version_within_its_budget():
    cache = StateCache(budget_bytes=20)
    cache.keep(1, version=5, size=8)
    cache.keep(2, version=6, size=8)
    assert cache.holds(1, 5) and not cache.holds(1, 4) and not cache.holds(1, None)
    cache.keep(1, version=9, size=8)  # a newer state of client 1 replaces its older one
    cache.keep(3, version=7, size=8)  # over budget: the least recently returned (client 2) goes
    assert not cache.holds(2, 6) and cache.holds(1, 9) and cache.holds(3, 7) and cache.held_bytes == 16
    cache.keep(4, version=8, size=30)  # larger than the whole budget: not held
    assert not cache.holds(4, 8) and cache.held_bytes == 16


def _scaffold_worker_kwargs(size: int):
    rng = np.random.default_rng(0)
    plan = TrainingPlan(batch_size=5, sgd=SGDConfig(lr=0.1), seed=0, algorithm="scaffold")
    return dict(model=ModelSpec("logreg", (4,), 2), plan=plan, train_x=rng.normal(size=(40, 4)).astype(np.float32),
                train_y=rng.integers(0, 2, 40),
                shards=ClientIndices.from_parts([np.arange(i * 10, (i + 1) * 10) for i in range(4)]))


@pytest.mark.ray
def test_an_actor_trains_from_the_state_it_holds_and_is_sent_the_others(ray_runtime):
    from raysim.runtime.local import LocalExecutor
    from raysim.runtime.ray_executor import RayExecutor, start_workers
    from raysim.runtime.worker import ClientWorker

    size = 10  # logreg, 4 features, 2 classes
    kwargs = _scaffold_worker_kwargs(size)
    params = np.linspace(-0.1, 0.1, size, dtype=np.float32)
    control = {"control": np.full(size, 0.01, dtype=np.float32)}

    def tasks(first: int, states: dict, versions: dict) -> list[TrainTask]:
        return [TrainTask(first + c, c, first + c, 1, server=control, state=states.get(c, {}),
                          state_version=versions.get(c)) for c in range(4)]

    def train(executor, round_tasks):
        executor.submit(0, params, round_tasks, [10.0] * 4)
        return [executor.result(t.task_id) for t in round_tasks]

    local = LocalExecutor(ClientWorker(**kwargs))
    first = train(local, tasks(0, {}, {}))
    truth = {r.client_id: r.state for r in first}
    reference = train(local, tasks(10, truth, {}))
    for budget, held_states in [(10**6, 4), (4 * size + 1, 2)]:  # all held; one state an actor
        executor = RayExecutor(actors=start_workers(num_actors=2, num_cpus=1, num_gpus=0, worker_kwargs=kwargs,
                                                    state_bytes=budget),
                               num_cpus=1, num_gpus=0, worker_kwargs=kwargs, state_bytes=budget)
        try:
            once = train(executor, tasks(0, {}, {}))
            assert sum(len(cache.entries) for cache in executor._held) == held_states
            held = {c for cache in executor._held for c in cache.entries}
            # a held state is not sent: the actor trains from its own even when the driver's differs
            wrong = {c: ({"control": np.full(size, 9.0, dtype=np.float32)} if c in held else truth[c]) for c in truth}
            again = train(executor, tasks(10, wrong, {r.client_id: r.task_id for r in once}))
            for one, other in zip([*first, *reference], [*once, *again]):
                np.testing.assert_array_equal(one.delta, other.delta)
                np.testing.assert_array_equal(one.state["control"], other.state["control"])
            # a state of an unknown version is sent, and used
            sent = train(executor, tasks(20, wrong, {}))
            assert not np.array_equal(sent[min(held)].delta, reference[min(held)].delta)
        finally:
            executor.shutdown()


def _tables(run_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    clients = pd.read_parquet(run_dir / "clients.parquet")
    return (pd.read_parquet(run_dir / "rounds.parquet")[ROUNDS],
            clients.drop(columns=[c for c in clients.columns if "wall" in c]))


@pytest.mark.ray
@pytest.mark.parametrize("vectorize,state_mb", [("off", 1024.0), ("on", 0.01)])
def test_stateful_runs_are_bit_identical_whatever_the_packing(ray_runtime, tiny, tmp_path, vectorize, state_mb):
    """SCAFFOLD on 1, 2 and 8 actors (one thread each) and in-process; 0.01 MB leaves each actor
    room for one logreg control, so states are evicted and sent again."""
    common = dict(data={"num_clients": 8}, selection={"clients_per_round": 6}, **SCAFFOLD)
    packings = {"local": {}, "one actor": {"num_cpus": 1.0, "clients_per_actor": 8},
                "two actors": {"num_cpus": 1.0}, "one client each": {"num_cpus": 0.25, "clients_per_actor": 1}}
    tables = {}
    for name, resources in packings.items():
        scenario = tiny(run={"executor": "ray" if resources else "local", "rounds": 5},
                        resources={**resources, "vectorize": vectorize, "client_state_mb": state_mb}, **common)
        outcome = run(scenario, results_root=tmp_path / name.replace(" ", "_"))
        tables[name] = _tables(outcome.run_dir)
    for name, (rounds, clients) in tables.items():
        pd.testing.assert_frame_equal(rounds, tables["local"][0], check_exact=True, obj=name)
        pd.testing.assert_frame_equal(clients, tables["local"][1], check_exact=True, obj=name)


@pytest.mark.ray
def test_a_resumed_stateful_ray_run_ends_as_the_uninterrupted_one(ray_runtime, tiny, tmp_path):
    """The resumed run's new actors hold nothing: every client's first task is sent its state."""
    scenario = tiny(run={"executor": "ray", "rounds": 5}, **SCAFFOLD)
    whole, cut = whole_and_resumed(scenario, tmp_path, after=2)
    for ours, theirs in zip(_tables(whole), _tables(cut)):
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


@pytest.mark.ray
def test_a_replaced_actor_is_sent_the_states_it_lost(ray_runtime, tiny, tmp_path):
    def scenario(marker):
        # an actor dies at its 30th training step, in the second or third round, when it holds states
        model = {"name": "tests.test_end_to_end:DiesOnce", "options": {"marker": str(marker), "at_step": 30}}
        return tiny(run={"executor": "ray", "rounds": 5}, model=model, **SCAFFOLD)

    (tmp_path / "already").touch()  # the reference run's actors never die
    reference = run(scenario(tmp_path / "already"), results_root=tmp_path / "a")
    killed = run(scenario(tmp_path / "marker"), results_root=tmp_path / "b")
    assert reference.summary["actor_restarts"] == 0 and killed.summary["actor_restarts"] == 1
    for ours, theirs in zip(_tables(reference.run_dir), _tables(killed.run_dir)):
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
