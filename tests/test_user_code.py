"""The public protocols from a user's package: a client algorithm, a server strategy and a
policy named in a scenario or handed to ``raysim.api.run``; each refusal names the key, each
failure the object and the client, and nothing is written past the last good round."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raysim.api import run
from raysim.cli import main
from raysim.inputs import ConfigError
from raysim.scenario.preparation import initial_model, prepare
from tests.conftest import tiny_table, whole_and_resumed

USER = "tests.user_code"


def _write(tmp_path, **sections) -> str:
    import tomli_w

    path = tmp_path / "scenario.toml"
    path.write_text(tomli_w.dumps(tiny_table(**sections)))
    return str(path)


@pytest.mark.parametrize("sections, message", [
    ({"client": {"algorithm": f"{USER}:NoTrain"}}, "has no method train(self, task)"),
    ({"client": {"algorithm": f"{USER}:TrainsWithoutTask"}}, "its train takes (self), not (self, task)"),
    ({"client": {"algorithm": f"{USER}:CountingSGD", "algorithm_options": {"speed": 2}}},
     "(built with client.algorithm_options) takes (lr_scale): it has no parameter ['speed']"),
    ({"client": {"algorithm": f"{USER}:Missing"}}, "has no attribute 'Missing'"),
    ({"server": {"strategy": f"{USER}:NoAggregate"}}, "has no method aggregate(self, params, state, updates)"),
    ({"server": {"strategy": f"{USER}:MeanOfDeltas", "strategy_options": {"lr": 1}}},
     "it has no parameter ['lr']"),
    ({"policy": {"kind": f"{USER}:NotADataclassPolicy"}}, "is not a dataclass"),
    ({"policy": {"kind": f"{USER}:SequentialPolicy", "cohorts": 2}}, "unknown key 'policy.cohorts'"),
    ({"server": {"strategy": f"{USER}:MeanOfDeltas", "weighting": "uniform"}, "privacy": {"dp": "central"}},
     "is a user strategy, which the [privacy] options cannot run"),
    ({"client": {"algorithm": f"{USER}:CountingSGD"}, "server": {"strategy": "scaffold"}},
     "SCAFFOLD runs its own client"),
    ({"client": {"algorithm": "sgd", "algorithm_options": {"a": 1}}}, "algorithm_options are for a user algorithm"),
    ({"selection": {"selector": f"{USER}:NoSelectMethod"}}, "has no method select(self, count, view, draw)"),
    ({"selection": {"selector": {"kind": "power_of_choice", "d": 2}}}, "set d >= 4"),
    ({"selection": {"selector": "oort"}, "privacy": {"dp": "central"}, "server": {"weighting": "uniform"}},
     "its accountant assumes uniform sampling"),
])
def test_user_code_that_does_not_fit_is_refused_at_validate_with_exit_2(tmp_path, capsys, sections, message):
    assert main(["validate", _write(tmp_path, **sections)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("algorithm, message", [
    ("FailsAtRound2", "RuntimeError: the user's bug"),
    ("NaNState", "LocalResult.state['h'] has NaN or infinite entries"),
    ("WrongDelta", "LocalResult.delta must be a float array of shape (610,), got (3,)"),
])
def test_a_failing_algorithm_ends_the_run_naming_it_and_the_client(tmp_path, capsys, algorithm, message):
    code = main(["run", _write(tmp_path, client={"algorithm": f"{USER}:{algorithm}"}), "--results",
                 str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"client.algorithm {USER}:{algorithm}" in err and message in err and "client " in err
    rounds = list((tmp_path / "out").rglob("rounds.parquet"))
    recorded = len(pd.read_parquet(rounds[0])) if rounds else 0
    assert recorded == (1 if algorithm == "FailsAtRound2" else 0)  # nothing past the last good round


def test_a_failing_strategy_ends_the_run_with_exit_1(tmp_path, capsys):
    code = main(["run", _write(tmp_path, server={"strategy": f"{USER}:RaisingStrategy"}), "--results",
                 str(tmp_path / "out"), "--quiet"])
    assert code == 1
    assert f"server.strategy {USER}:RaisingStrategy raised ValueError: the user's strategy bug" in capsys.readouterr().err
    assert not list((tmp_path / "out").rglob("rounds.parquet"))


def test_validate_builds_a_user_algorithm_where_torch_is(tiny):
    scenario = tiny(client={"algorithm": f"{USER}:CountingSGD", "algorithm_options": {"lr_scale": 0.5}})
    prepared = prepare(scenario)
    assert prepared.plan.algorithm == f"{USER}:CountingSGD" and prepared.plan.algorithm_options == {"lr_scale": 0.5}
    initial_model(scenario, prepared.model, plan=prepared.plan)
    with pytest.raises(ConfigError, match="client.algorithm"):
        bad = tiny(client={"algorithm": f"{USER}:TrainsWithoutTask"})
        initial_model(bad, prepare(bad).model, plan=prepare(bad).plan)


def _rounds(run_dir) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "rounds.parquet")


def test_user_algorithm_state_and_strategy_run_on_ray_alike_across_packings(tiny, tmp_path, ray_runtime):
    sections = dict(run={"executor": "ray", "rounds": 5}, client={"algorithm": f"{USER}:CountingSGD"},
                    server={"strategy": f"{USER}:MeanOfDeltas"})
    runs = [run(tiny(**sections, resources={"clients_per_actor": per_actor, "num_cpus": 0.25}),
                results_root=tmp_path / str(per_actor))
            for per_actor in (1, 8)]
    one, packed = (_rounds(r.run_dir) for r in runs)
    np.testing.assert_array_equal(one.test_accuracy, packed.test_accuracy)
    assert "mean_norm" in one.columns and one.mean_norm.gt(0).all()
    clients = pd.read_parquet(runs[0].run_dir / "clients.parquet")
    applied = clients[clients.status == "applied"].sort_values(["round", "client_id"])
    # the state counts the client's aggregated updates: 1 the first time, then one more each time
    expected = applied.groupby("client_id").cumcount() + 1
    assert applied.metric_seen.astype(int).tolist() == expected.tolist()
    assert (runs[0].run_dir / "scenario.toml").read_text().count(f"{USER}:CountingSGD") == 1


def test_a_resumed_run_with_every_state_spilled_ends_as_an_uninterrupted_one(tiny, tmp_path):
    scenario = tiny(run={"rounds": 5, "checkpoint_every": 1}, resources={"client_state_mb": 0.0},
                    client={"algorithm": f"{USER}:CountingSGD"}, server={"strategy": f"{USER}:MeanOfDeltas"})
    whole, resumed = whole_and_resumed(scenario, tmp_path, after=2)
    pd.testing.assert_series_equal(_rounds(whole).test_accuracy, _rounds(resumed).test_accuracy)
    assert list((resumed / "client_state").glob("*.npz"))  # the states were on disk


def test_objects_from_a_notebook_reach_the_driver_and_the_actors(tiny, tmp_path, ray_runtime):
    from raysim.models.algorithm import LocalResult

    class HalfStep:  # defined here, as in a notebook cell: no module the workers could import it from
        def train(self, task):
            import torch

            for x, y in task.batches():
                task.model.zero_grad()
                task.loss(task.model(x), y).backward()
                with torch.no_grad():
                    for p in task.model.parameters():
                        p -= 0.5 * task.settings.sgd.lr * p.grad
            return LocalResult(steps=1, loss=0.0, metrics={"notebook": 1.0})

    class Averaging:
        def init(self, params):
            return {}

        def aggregate(self, params, state, updates):
            moved = params + np.mean([u.delta for u in updates], axis=0) if updates else params
            return moved.astype(params.dtype), state, {"from_notebook": 1.0}

    outcome = run(tiny(run={"executor": "ray", "rounds": 2}), results_root=tmp_path, client_algorithm=HalfStep,
                  strategy=Averaging())
    rounds = _rounds(outcome.run_dir)
    assert rounds.from_notebook.eq(1.0).all() and rounds.test_accuracy.notna().all()
    assert pd.read_parquet(outcome.run_dir / "clients.parquet").metric_notebook.dropna().eq(1.0).all()
    assert "HalfStep" in (outcome.run_dir / "scenario.toml").read_text()


def test_a_user_policy_from_its_package_runs_and_resumes(tiny, tmp_path):
    scenario = tiny(policy={"kind": f"{USER}:SequentialPolicy", "cohort": 2}, run={"rounds": 4})
    whole, resumed = whole_and_resumed(scenario, tmp_path, after=2)
    rounds = _rounds(whole)
    assert rounds.clients.eq(1).all() and len(rounds) == 4
    pd.testing.assert_frame_equal(rounds[["test_accuracy", "sim_time"]], _rounds(resumed)[["test_accuracy", "sim_time"]])


def test_a_user_selector_chooses_the_clients_and_resumes(tiny, tmp_path, monkeypatch):
    """The write-your-own package's selector (docs/architecture.md, "A selector")."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "examples" / "write_your_own"))
    scenario = tiny(selection={"selector": {"kind": "yours.selection:LeastTried", "skip": [7]}}, run={"rounds": 4})
    whole, resumed = whole_and_resumed(scenario, tmp_path, after=2)
    clients = pd.read_parquet(whole / "clients.parquet")
    # 8 devices, 4 a round, 7 skipped: rounds 1 and 2 take 0-3 and 4-6 plus 0 (tried once, lowest id)
    assert sorted(clients[clients["round"] == 1].client_id) == [0, 1, 2, 3]
    assert sorted(clients[clients["round"] == 2].client_id) == [0, 4, 5, 6]
    assert 7 not in set(clients.client_id)
    pd.testing.assert_frame_equal(clients.drop(columns=["wall_train_s"]),
                                  pd.read_parquet(resumed / "clients.parquet").drop(columns=["wall_train_s"]))


def test_a_selector_that_names_a_busy_client_stops_the_run_naming_it(tmp_path, capsys):
    code = main(["run", _write(tmp_path, selection={"selector": f"{USER}:SelectsBusy"}), "--results",
                 str(tmp_path / "out"), "--quiet"])
    assert code != 0 and "the selector tests.user_code:SelectsBusyClients returned clients [8]" in capsys.readouterr().err


def test_a_diverged_client_is_rejected_by_the_server_not_an_error(tiny, tmp_path):
    """A non-finite update (plain SGD at too high a learning rate gives one) is rejected by the
    server's hygiene and the run goes on, its NaN loss and state dropped with it."""
    outcome = run(tiny(client={"algorithm": f"{USER}:Diverges"}, run={"rounds": 2}), results_root=tmp_path)
    clients = pd.read_parquet(outcome.run_dir / "clients.parquet")
    assert (clients.status == "rejected").all() and clients.rejected_because.str.contains("NaN").all()
    assert len(pd.read_parquet(outcome.run_dir / "rounds.parquet")) == 2
