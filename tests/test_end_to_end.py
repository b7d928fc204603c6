"""Short runs end to end: on Ray (2 CPUs) and in-process; results on disk; determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from torch import nn

from raysim.api import run
from raysim.results.results import load
from raysim.sim.kernel.tasks import ClientError

pytestmark = pytest.mark.slow


class Exploding(nn.Module):
    """A model whose forward pass fails, standing in for a buggy user model."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.linear = nn.Linear(int(np.prod(input_shape)), num_classes)

    def forward(self, x):
        raise RuntimeError("boom in forward")


def _metrics(outcome) -> pd.DataFrame:
    return pd.read_parquet(outcome.run_dir / "rounds.parquet")[["round", "sim_time", "test_accuracy", "test_loss", "train_loss"]]


@pytest.mark.ray
def test_ray_run_learns_and_writes_tidy_results(ray_runtime, tiny, tmp_path):
    scenario = tiny(run={"executor": "ray", "rounds": 12}, data={"num_clients": 20},
                    selection={"clients_per_round": 10})
    outcome = run(scenario, results_root=tmp_path)
    res = load(outcome.run_dir)
    accuracy = res.rounds["test_accuracy"].to_numpy()
    assert len(res.rounds) == 12
    assert accuracy[-3:].mean() > accuracy[0] + 0.1
    assert set(res.clients["status"]) == {"applied"}
    assert len(res.clients) == 12 * 10
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["num_actors"] == 2
    assert (outcome.run_dir / "accuracy.png").stat().st_size > 0
    assert (outcome.run_dir / "scenario.toml").read_text().count("[run]") == 1


@pytest.mark.ray
def test_same_seed_same_metrics_whatever_the_number_of_actors(ray_runtime, tiny, tmp_path):
    base = dict(data={"num_clients": 6}, selection={"clients_per_round": 4})
    many = run(tiny(run={"executor": "ray"}, resources={"num_cpus": 1.0, "clients_per_actor": "auto"}, **base),
               results_root=tmp_path)
    again = run(tiny(run={"executor": "ray"}, resources={"num_cpus": 1.0, "clients_per_actor": "auto"}, **base),
                results_root=tmp_path)
    one_each = run(tiny(run={"executor": "ray"}, resources={"num_cpus": 0.3, "clients_per_actor": 1}, **base),
                   results_root=tmp_path)
    assert one_each.summary["num_actors"] == 6 and many.summary["num_actors"] == 2
    pd.testing.assert_frame_equal(_metrics(many), _metrics(again))
    pd.testing.assert_frame_equal(_metrics(many), _metrics(one_each))


@pytest.mark.ray
def test_client_exception_surfaces_with_its_client_id(ray_runtime, tiny, tmp_path):
    scenario = tiny(run={"executor": "ray"}, model={"name": "tests.test_end_to_end:Exploding"})
    with pytest.raises(ClientError) as err:
        run(scenario, results_root=tmp_path)
    assert "boom in forward" in str(err.value)
    assert f"client {err.value.client_id}" in str(err.value)
    assert not list(tmp_path.rglob("*.parquet"))  # it failed before any round: no half-written run folder


def test_local_executor_runs_the_same_client_code(tiny, tmp_path):
    outcome = run(tiny(run={"rounds": 6}), results_root=tmp_path)
    rounds = pd.read_parquet(outcome.run_dir / "rounds.parquet")
    assert list(rounds["round"]) == [1, 2, 3, 4, 5, 6]
    assert rounds["sim_time"].is_monotonic_increasing
    assert outcome.summary["executor"] == "local"


class SlowLogreg(nn.Module):
    """logreg whose forward pass sleeps: a machine slowed down, the same computation."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes))

    def forward(self, x):
        import time

        time.sleep(0.002)
        return self.body(x)


@pytest.mark.ray
def test_simulated_time_does_not_depend_on_wall_time_or_actors(ray_runtime, tiny, tmp_path):
    common = dict(
        data={"num_clients": 8}, selection={"clients_per_round": 6},
        policy={"kind": "hybrid", "min_updates": 3, "deadline_s": 2.0},
        system={"speed_distribution": "lognormal", "speed_sigma": 1.0, "slow_fraction": 0.3, "dropout": 0.2},
    )
    fast = run(tiny(run={"executor": "ray"}, **common), results_root=tmp_path)
    slow_one_actor = run(tiny(run={"executor": "ray"}, model={"name": "tests.test_end_to_end:SlowLogreg"},
                              resources={"num_cpus": 2.0}, **common), results_root=tmp_path)
    assert fast.summary["num_actors"] == 2 and slow_one_actor.summary["num_actors"] == 1
    assert slow_one_actor.summary["wall_time"] > fast.summary["wall_time"]
    pd.testing.assert_frame_equal(_metrics(fast), _metrics(slow_one_actor))
    clients = [pd.read_parquet(o.run_dir / "clients.parquet")[["round", "client_id", "status", "staleness", "end_time"]]
               for o in (fast, slow_one_actor)]
    pd.testing.assert_frame_equal(*clients)
    assert set(clients[0]["status"]) - {"applied"}  # the population really is unequal and flaky


def test_sign_flip_attackers_hurt_the_mean_and_the_median_resists(tiny, tmp_path):
    common = dict(run={"rounds": 8}, data={"num_clients": 10}, selection={"clients_per_round": 10},
                  attack={"kind": "sign_flip", "fraction": 0.3, "scale": 4.0})
    clean = run(tiny(run={"rounds": 8}, data={"num_clients": 10}, selection={"clients_per_round": 10}),
                results_root=tmp_path).summary["final_accuracy"]
    mean = run(tiny(**common), results_root=tmp_path)
    median = run(tiny(server={"aggregator": "median"}, **common), results_root=tmp_path).summary["final_accuracy"]
    clients = pd.read_parquet(mean.run_dir / "clients.parquet")
    assert clients.groupby("client_id")["attacker"].first().sum() == 3
    assert mean.summary["final_accuracy"] < clean - 0.1
    assert median > mean.summary["final_accuracy"] + 0.1


class DiesOnce(nn.Module):
    """logreg on Synthetic's 60 features whose process dies (OOM-like) at its ``at_step``-th
    training step: the first actor to get there creates ``marker`` and dies, the others go on."""

    def __init__(self, marker: str, at_step: int = 1):
        super().__init__()
        self.marker, self.at_step, self.steps = marker, at_step, 0
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(60, 10))

    def forward(self, x):
        import os

        self.steps += self.training
        if self.training and self.steps >= self.at_step:
            try:  # O_EXCL: of actors training at the same moment, exactly one creates it and dies
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return self.body(x)
            os._exit(1)
        return self.body(x)


@pytest.mark.ray
def test_a_dead_actor_is_replaced_and_its_clients_rerun(ray_runtime, tiny, tmp_path):
    (tmp_path / "already").touch()  # the reference run's actors never die
    reference = run(tiny(run={"executor": "ray"}, model={"name": "tests.test_end_to_end:DiesOnce",
                                                         "options": {"marker": str(tmp_path / "already")}}),
                    results_root=tmp_path / "a")
    killed = run(tiny(run={"executor": "ray"}, model={"name": "tests.test_end_to_end:DiesOnce",
                                                      "options": {"marker": str(tmp_path / "marker")}}),
                 results_root=tmp_path / "b")
    assert reference.summary["actor_restarts"] == 0
    assert killed.summary["actor_restarts"] == 1 and killed.summary["status"] == "completed"
    pd.testing.assert_frame_equal(_metrics(reference), _metrics(killed))


class AlwaysDies(nn.Module):
    """A model whose process dies whenever it trains: replacing its actor can never help."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(60, 10))

    def forward(self, x):
        import os

        if self.training:
            os._exit(1)
        return self.body(x)


@pytest.mark.ray
def test_actors_that_keep_dying_end_the_run_after_a_bounded_number_of_replacements(ray_runtime, tiny, tmp_path):
    from raysim.runtime import WorkersLost

    with pytest.raises(WorkersLost, match="died .* times in a row"):
        run(tiny(run={"executor": "ray"}, model={"name": "tests.test_end_to_end:AlwaysDies"}), results_root=tmp_path)
    assert not list(tmp_path.rglob("summary.json"))  # nothing was recorded, so nothing is left


@pytest.mark.ray
def test_a_dead_actors_work_is_dropped_when_the_policy_says_so(ray_runtime, tiny, tmp_path):
    outcome = run(tiny(run={"executor": "ray", "rounds": 3}, resources={"actor_failure": "drop"},
                       model={"name": "tests.test_end_to_end:DiesOnce", "options": {"marker": str(tmp_path / "marker")}}),
                  results_root=tmp_path)
    assert outcome.summary["actor_restarts"] == 1 and outcome.summary["status"] == "completed"
    rounds = pd.read_parquet(outcome.run_dir / "rounds.parquet")
    clients = pd.read_parquet(outcome.run_dir / "clients.parquet")
    lost = clients[clients["status"] == "lost"]
    assert len(rounds) == 3 and len(lost) >= 1  # the run went on without the lost clients
    assert set(lost["round"]) == {1} and rounds["failed_lost"].tolist() == [len(lost), 0, 0]
    assert rounds["clients"].iloc[0] == 4 - len(lost) and (lost["bytes_up"] == 0).all()


def test_scaffold_keeps_client_controls_across_rounds_and_learns(tiny, tmp_path):
    from raysim.runtime.local import LocalExecutor
    from raysim.runtime.worker import ClientWorker
    from raysim.scenario.composition import driver_parts
    from raysim.scenario.preparation import initial_model, prepare
    from raysim.sim.kernel.driver import Driver

    scenario = tiny(server={"strategy": "scaffold", "weighting": "uniform"}, run={"rounds": 6},
                    client={"epochs": 2, "lr": 0.05})
    prepared = prepare(scenario)
    ds = prepared.dataset
    worker = ClientWorker(model=prepared.model, plan=prepared.plan, train_x=ds.train_x, train_y=ds.train_y,
                          shards=prepared.shards, test_x=ds.test_x, test_y=ds.test_y, pixels=prepared.pixels)
    initial = initial_model(scenario, prepared.model)
    parts = driver_parts(scenario, layout=initial.layout, num_classes=prepared.model.num_classes, num_clients=8,
                         client_sizes=prepared.shards.sizes())
    driver = Driver(parts, initial_params=initial.params, layout=initial.layout,
                    client_sizes=prepared.shards.sizes(), test_size=len(ds.test_y),
                    executor_factory=lambda: LocalExecutor(worker))
    accuracy = []
    while reports := driver.advance():
        accuracy += [r.round_row["test_accuracy"] for r in reports]
    # every client that trained keeps its c_i in the per-client store
    controls = [driver.clients.algorithm_state(c).get("control") for c in range(8)]
    assert sum(c is not None for c in controls) >= 4
    server = driver.state.strategy_state.control
    assert np.linalg.norm(server) > 0
    # c equals (1/N) times the sum of every client's c_i (all start at 0, each dc enters both), up
    # to float32 rounding: the controls are in the model's dtype
    assert server.dtype == np.float32 and {c.dtype for c in controls if c is not None} == {np.dtype(np.float32)}
    np.testing.assert_allclose(server, sum(c for c in controls if c is not None) / 8, atol=1e-7)
    assert max(accuracy[-2:]) > accuracy[0]


def test_scaffold_needs_synchronous_rounds(tiny):
    from raysim.inputs import ConfigError

    with pytest.raises(ConfigError, match="needs policy.kind = 'sync'"):
        tiny(server={"strategy": "scaffold"}, policy={"kind": "async"})


@pytest.mark.ray
@pytest.mark.parametrize(
    ("resources", "message"),
    [({"num_gpus": 0.5}, "the Ray cluster has no GPUs"),
     ({"num_cpus": 1.0, "clients_per_actor": 1}, "needs 8 actors"),
     ({"num_cpus": 4.0}, "lower resources.num_cpus")],
)
def test_resources_the_cluster_lacks_are_refused_before_anything_starts(ray_runtime, tiny, tmp_path, resources, message):
    from raysim.runtime.session import ResourceError

    with pytest.raises(ResourceError, match=message):
        run(tiny(run={"executor": "ray"}, resources=resources), results_root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_driver_side_never_imports_torch():
    """The driver actor schedules and aggregates numpy vectors: it starts without loading torch."""
    import subprocess
    import sys

    code = ("import sys\n"
            "import raysim.sim.kernel.driver, raysim.runtime.ray_executor, raysim.runtime.session\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_actor_with_a_gpu_share_trains_on_cuda_with_threads_from_its_cpu_share():
    from raysim.runtime.ray_executor import _actor_kwargs

    assert _actor_kwargs({"plan": None}, num_cpus=2.0, num_gpus=0.25) == {"plan": None, "device": "cuda", "threads": 2}
    assert _actor_kwargs({}, num_cpus=0.5, num_gpus=0.0) == {"device": "cpu", "threads": 1}


def test_work_is_spread_largest_first_onto_the_least_loaded_actor():
    from raysim.runtime.ray_executor import _spread

    load = [0.0, 5.0]
    assert _spread([3.0, 7.0, 3.0, 1.0], load) == {0: [1, 2], 1: [0, 3]}
    assert load == [10.0, 9.0]
