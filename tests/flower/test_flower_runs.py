"""Unmodified Flower apps (tests/flower_apps, written as Flower's quickstart writes them) on
raysim: both Flower APIs, simulated time, heterogeneous devices, dropouts, per-node Context
state, determinism across actor packings, and the errors a user meets (exit 2 at load, 1 at run)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("flwr")

from raysim.api import run  # noqa: E402
from raysim.cli import main  # noqa: E402
from raysim.scenario.flower import parse_flower  # noqa: E402

APPS = "tests.flower_apps"
MESSAGE = {"server_app": f"{APPS}.message_app:server", "client_app": f"{APPS}.message_app:app",
           "metric": "eval_acc", "loss": "eval_loss"}
RUN_CONFIG = {"num-server-rounds": 2, "fraction-train": 0.5, "fraction-evaluate": 1.0, "lr": 0.05,
              "local-epochs": 1, "train-examples": 600}


def scenario(*, executor: str = "local", run_config: dict | None = None, flower: dict | None = None, **sections):
    table = {"run": {"name": "flower", "seed": 7, "executor": executor},
             "flower": {**MESSAGE, "num_nodes": 4, "run_config": {**RUN_CONFIG, **(run_config or {})}, **(flower or {})},
             "ray": {"num_cpus": 2}, **sections}
    return parse_flower(table)


def tables(outcome) -> tuple[pd.DataFrame, pd.DataFrame]:
    rounds = pd.read_parquet(outcome.run_dir / "rounds.parquet")
    return rounds.drop(columns=["wall_time"]), pd.read_parquet(outcome.run_dir / "clients.parquet")


def test_the_quickstart_app_runs_unmodified_on_ray_alike_across_packings(tmp_path, ray_runtime):
    outcomes = [run(scenario(executor="ray", resources={"clients_per_actor": per_actor, "num_cpus": 0.25}),
                    results_root=tmp_path / str(per_actor)) for per_actor in (1, 4)]
    (first, first_messages), (second, second_messages) = (tables(o) for o in outcomes)
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(first_messages, second_messages)
    assert len(first) == 2 and (first["replies"] == [2 + 4, 2 + 4]).all()  # half the nodes train, all evaluate
    assert {"train_train_loss", "evaluate_eval_acc", "test_eval_acc", "test_loss"} <= set(first.columns)
    assert outcomes[0].summary["metric"] == "eval_acc" and outcomes[0].summary["num_actors"] == 4
    trained = first_messages[first_messages["message_type"] == "train"]
    # bytes from the actual records: the CNN's arrays down and back up
    assert (trained["bytes_down"] == trained["bytes_up"]).all() and trained["bytes_down"].iloc[0] > 40_000


def test_the_local_executor_gives_the_rows_ray_gives(tmp_path, ray_runtime):
    on_ray, here = (tables(run(scenario(executor=e, resources={"num_cpus": 0.5}), results_root=tmp_path / e))
                    for e in ("ray", "local"))
    pd.testing.assert_frame_equal(on_ray[0], here[0])


def test_with_every_node_answering_its_accuracy_tracks_raysims_native_fedavg(tmp_path):
    """Homogeneous devices, every node trains and evaluates each round. The twin differs only in
    what no simulator can share with a Flower app: the initial weights (the app's Net() from the
    seeded global generator; raysim's from its model-init stream) and the batch order (the app's
    DataLoader; raysim's seeded batches). So early rounds differ; from round 4 they agree within
    0.05 and at round 6 within 0.03 (README: seeds 0-2 measured)."""
    from raysim.scenario.sections import parse_scenario
    from tests.flower.native_twin import native_table

    config = {"num-server-rounds": 6, "train-examples": 4000, "fraction-train": 1.0}
    flower = tables(run(scenario(run_config=config), results_root=tmp_path / "flower"))[0]["test_eval_acc"]
    native = run(parse_scenario(native_table(nodes=4, train_examples=4000, rounds=6, fraction=1.0, lr=0.05, seed=7)),
                 results_root=tmp_path / "native")
    twin = pd.read_parquet(native.run_dir / "rounds.parquet")["test_accuracy"]
    gap = (flower.to_numpy() - twin.to_numpy())
    assert abs(gap[3:]).max() <= 0.05 and abs(gap[-1]) <= 0.03 and twin.iloc[-1] > 0.7


def test_simulated_time_follows_the_devices_and_dropouts_lose_replies(tmp_path):
    plain = tables(run(scenario(), results_root=tmp_path / "plain"))
    system = {"speed_distribution": "lognormal", "speed_sigma": 1.0, "dropout": 0.3, "seconds_per_sample": 0.01}
    rounds, messages = tables(run(scenario(system=system), results_root=tmp_path / "hetero"))
    replied = messages[messages["status"] == "replied"]
    assert (replied["compute_s"] > 0).all() and (replied["arrived_at"] > replied["sent_at"]).all()
    trained = replied[replied["message_type"] == "train"]
    assert (trained["compute_s"] / trained["examples"]).nunique() > 1  # devices of different speeds
    assert rounds["failed_dropout"].sum() == (messages["status"] == "dropout").sum() > 0
    assert (rounds["replies"] < rounds["messages"]).any()
    assert rounds["sim_time"].is_monotonic_increasing and rounds["sim_time"].iloc[-1] > plain[0]["sim_time"].iloc[-1]
    homogeneous = plain[1][plain[1]["message_type"] == "train"]
    assert homogeneous["compute_s"].tolist() == pytest.approx((homogeneous["examples"] * 0.001).tolist())


@pytest.mark.parametrize("strategy", ["fedprox", "fedadam"])
def test_flowers_fedprox_and_fedadam_run(tmp_path, strategy):
    rounds, _ = tables(run(scenario(run_config={"strategy": strategy}), results_root=tmp_path))
    assert len(rounds) == 2 and rounds["test_eval_acc"].notna().all()


def test_a_node_reads_back_the_state_it_kept_in_its_context(tmp_path):
    outcome = run(scenario(run_config={"num-server-rounds": 3},
                           flower={"server_app": f"{APPS}.stateful_app:server", "client_app": f"{APPS}.stateful_app:app",
                                   "metric": "accuracy", "loss": "loss"}), results_root=tmp_path)
    messages = tables(outcome)[1]
    counts = messages[messages["message_type"] == "train"].groupby("client_id")["metric_times-trained"].apply(list)
    assert counts.to_dict() == {node: [1.0, 2.0, 3.0] for node in range(4)}


def test_the_legacy_numpyclient_app_runs_by_its_group_ids_alike_twice(tmp_path):
    legacy = {"server_app": f"{APPS}.legacy_app:server", "client_app": f"{APPS}.legacy_app:app"}
    (rounds, messages), (again, again_messages) = (
        tables(run(scenario(run_config={"fraction-fit": 1.0}, flower=legacy), results_root=tmp_path / str(i)))
        for i in range(2))
    assert rounds["group_id"].tolist() == ["1", "2"] and (rounds["replies"] == 8).all()
    assert set(messages["message_type"]) == {"train", "evaluate"}
    # round 1 starts from the same model: identical; later rounds aggregate in the legacy thread
    # pool's order, which Flower leaves free: equal to rounding
    first = messages["round"] == 1
    pd.testing.assert_frame_equal(messages[first], again_messages[first])
    pd.testing.assert_frame_equal(rounds, again, check_exact=False, rtol=1e-6)


HETEROGENEOUS = {"speed_distribution": "lognormal", "speed_sigma": 1.0, "dropout": 0.3, "seconds_per_sample": 0.01}


def dropped_by_round(messages: pd.DataFrame, kind: str) -> list[frozenset]:
    lost = messages[(messages["message_type"] == kind) & (messages["status"] == "dropout")]
    return [frozenset(lost.loc[lost["round"] == r, "client_id"]) for r in sorted(messages["round"].unique())]


def charged_as_documented(flower, messages: pd.DataFrame, *, epochs: float) -> None:
    """Each message's compute is its reply's examples x passes x its node's seconds per example:
    local epochs for train, ``forward_fraction`` (1/3 by default) for evaluate."""
    from raysim.sim.cost.devices import Population

    population = Population(flower.system, flower.flower.num_nodes, flower.run.seed)
    delivered = messages[messages["status"] != "offline"]
    speed = delivered["client_id"].map(lambda p: population.profile(p).seconds_per_sample)
    passes = delivered["message_type"].map({"train": epochs, "evaluate": 1 / 3})
    assert (delivered["examples"] > 0).all() and speed.nunique() == flower.flower.num_nodes
    assert delivered["compute_s"].tolist() == pytest.approx((delivered["examples"] * passes * speed).tolist())


def test_message_api_rounds_draw_afresh_each_round_and_alike_for_a_seed(tmp_path):
    """Flower's Message-API strategies set no group_id: the draws are keyed by the grid's own
    round, so the dropped nodes and each node's generators change from round to round, and a
    seed repeats them exactly."""
    draws = {"server_app": f"{APPS}.draws_app:server", "client_app": f"{APPS}.draws_app:app", "num_nodes": 6}
    drawing = scenario(flower=draws, system=HETEROGENEOUS, run_config={"num-server-rounds": 4, "local-epochs": 2})
    (rounds, messages), (again, again_messages) = (tables(run(drawing, results_root=tmp_path / str(i))) for i in range(2))
    pd.testing.assert_frame_equal(rounds, again)
    pd.testing.assert_frame_equal(messages, again_messages)
    assert rounds["round"].tolist() == [1, 2, 3, 4] and (rounds["group_id"] == "").all()
    for kind in ("train", "evaluate"):
        assert len(set(dropped_by_round(messages, kind))) > 1, kind
    assert rounds["failed_dropout"].sum() > 0
    replied = messages[messages["status"] == "replied"]
    for column in ("metric_py-draw", "metric_np-draw", "metric_torch-draw"):  # fresh draws: no value twice
        assert replied[column].is_unique, column
    assert replied.groupby(["client_id", "message_type"]).size().max() > 1  # a node answered in several rounds
    charged_as_documented(drawing, messages, epochs=2)


def test_the_legacy_api_computes_by_its_examples_on_each_device_and_weights_by_them(tmp_path):
    """A NumPyClient's count is its reply's num_examples: its compute follows it and its
    device's speed; the rounds' metrics (its metrics dict) are weighted by it; dropouts change
    from round to round."""
    legacy = {"server_app": f"{APPS}.legacy_app:server", "client_app": f"{APPS}.legacy_app:app", "num_nodes": 5,
              "metric": "accuracy", "loss": "loss"}
    numpy_client = scenario(flower=legacy, system=HETEROGENEOUS, run_config={
        "num-server-rounds": 3, "fraction-fit": 1.0, "local-epochs": 2, "train-examples": 613})
    rounds, messages = tables(run(numpy_client, results_root=tmp_path))
    charged_as_documented(numpy_client, messages, epochs=2)
    assert len(set(dropped_by_round(messages, "train"))) > 1 and rounds["failed_dropout"].sum() > 0
    evaluated = messages[(messages["message_type"] == "evaluate") & (messages["status"] == "replied")]
    assert evaluated["examples"].nunique() > 1  # 25 and 24 held-out examples
    for number, group in evaluated.groupby("round"):
        row = rounds.set_index("round").loc[number]
        for column, metric in (("test_accuracy", "metric_accuracy"), ("test_loss", "metric_loss")):
            assert row[column] == pytest.approx(np.average(group[metric], weights=group["examples"]))
    assert rounds["train_train_loss"].notna().all()


def test_a_reply_without_an_example_count_exits_1_naming_the_node_and_the_message(tmp_path):
    code, err = _cli(tmp_path, server_app=f"{APPS}.draws_app:server", client_app=f"{APPS}.draws_app:app",
                     run_config={**RUN_CONFIG, "report-examples": False})
    assert code == 1 and "run failed" in err
    assert "node 1000 (partition 0) replied to the 'train' message of round 1 without an example count" in err


@pytest.mark.parametrize("flower, says", [({"forward_fraction": 1.5}, "forward_fraction = 1.5 must be in [0, 1]"),
                                          ({"forward_fraction": float("nan")}, "forward_fraction = nan must be a finite number"),
                                          ({"examples_key": ""}, "examples_key must name")])
def test_the_cost_settings_are_checked_at_load(flower, says):
    from raysim.inputs import ConfigError

    with pytest.raises(ConfigError, match=re.escape(says)):
        scenario(flower=flower)


def _cli(tmp_path, **flower) -> tuple[int, str]:
    import tomli_w

    table = {"run": {"name": "flower", "executor": "local"},
             "flower": {**MESSAGE, "num_nodes": 2, "run_config": RUN_CONFIG, **flower}}
    path = tmp_path / "flower.toml"
    path.write_text(tomli_w.dumps(table))
    done = subprocess.run([sys.executable, "-m", "raysim", "run", str(path), "--results", str(tmp_path / "results"),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    return done.returncode, done.stderr


def test_an_object_that_is_not_a_flower_app_exits_2_and_writes_nothing(tmp_path):
    code, err = _cli(tmp_path, client_app=f"{APPS}.message_app:server")
    assert code == 2 and "flower.client_app" in err and "not a Flower ClientApp" in err
    assert not (tmp_path / "results").exists()


def test_an_app_that_raises_exits_1_naming_the_app_and_the_node(tmp_path):
    code, err = _cli(tmp_path, run_config={**RUN_CONFIG, "lr": "fast"})
    assert code == 1 and "run failed" in err and "flower.client_app 'tests.flower_apps.message_app:app' raised" in err


def test_a_missing_extra_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    import importlib.util

    import tomli_w

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flwr" else find_spec(name, *a))
    path = tmp_path / "flower.toml"
    path.write_text(tomli_w.dumps({"run": {"name": "flower"}, "flower": MESSAGE}))
    assert main(["validate", str(path)]) == 2
    assert "pip install 'raysim[flower]'" in capsys.readouterr().err


def test_the_shipped_flower_scenario_is_valid(capsys):
    assert main(["validate", "scenarios/flower_quickstart.toml"]) == 0
    assert "valid Flower scenario" in capsys.readouterr().err  # the console writes to stderr


def test_without_a_flower_scenario_nothing_imports_flwr():
    code = ("import sys, raysim.api, raysim.cli; from raysim.scenario.vertical import load_any; "
            "load_any('scenarios/quickstart.toml'); assert 'flwr' not in sys.modules, 'flwr imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
