"""A user's own data and tasks, end to end on Ray: a Parquet table with a client column, LEAF
folders (image and text), a user's function; regression and next-token metrics in the tables,
``compare`` and the summary; refusals at load (exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from raysim.api import run
from raysim.cli import main
from raysim.scenario.sections import parse_scenario
from tests.conftest import tiny_table

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SENSORS = str(FIXTURES / "table" / "sensors.parquet")
TABLE = {"dataset": "table", "path": SENSORS, "label": "load", "client": "site", "num_clients": 6,
         "partition": "natural"}


def _regression(**sections):
    return tiny_table(**{"data": TABLE, "task": {"kind": "regression"}, "model": {"name": "linear_regressor"},
                         "selection": {"clients_per_round": 3}, **sections})


def _rounds(run_dir: Path) -> pd.DataFrame:
    rounds = pd.read_parquet(run_dir / "rounds.parquet")
    return rounds.drop(columns=[c for c in rounds.columns if "wall" in c])


LEAF = {"femnist": {"data": {"dataset": "leaf", "num_clients": 4, "path": str(FIXTURES / "leaf" / "femnist")},
                    "task": {"kind": "classification"}, "model": {"name": "logreg"}},
        "shakespeare": {"data": {"dataset": "leaf", "num_clients": 3, "path": str(FIXTURES / "leaf" / "shakespeare")},
                        "task": {"kind": "next_token"}, "model": {"name": "char_lstm"}, "client": {"lr": 0.5}},
        "function": {"data": {"dataset": "tests.user_code:sensor_readings", "num_clients": 4}}}


def _alike_across_packings(table: dict, root: Path) -> list:
    outcomes = [run(parse_scenario({**table, "run": {**table["run"], "executor": "ray"},
                                    "resources": {"clients_per_actor": per_actor, "num_cpus": 0.25}}),
                    results_root=root / str(per_actor)) for per_actor in (1, 3)]
    first, second = (_rounds(o.run_dir) for o in outcomes)
    pd.testing.assert_frame_equal(first, second)
    return outcomes


@pytest.mark.parametrize("kind", sorted(LEAF))
def test_leaf_folders_and_a_data_function_run_alike_across_actor_packings(kind, tmp_path, ray_runtime):
    _alike_across_packings(_regression(run={"rounds": 2}, selection={"clients_per_round": 3}, **LEAF[kind]), tmp_path)


def test_a_table_with_a_client_column_regresses_per_site_alike_across_actor_packings(tmp_path, ray_runtime):
    outcomes = _alike_across_packings(_regression(run={"rounds": 3}), tmp_path)
    first = _rounds(outcomes[0].run_dir)
    assert {"test_mse", "test_mae", "test_r2", "test_loss"} <= set(first.columns) and "test_accuracy" not in first
    assert first["test_mse"].iloc[-1] < first["test_mse"].iloc[0]
    clients = pd.read_parquet(outcomes[0].run_dir / "clients.parquet")
    assert set(clients["client_id"]) <= set(range(6))
    summary = outcomes[0].summary
    assert summary["metric"] == "mse" and summary["best_mse"] == first["test_mse"].min()
    assert "final_accuracy" not in summary
    assert json.loads((outcomes[0].run_dir / "task.json").read_text())["lower_is_better"] == ["mae", "mse"]


def test_per_site_evaluation_reports_the_task_metric_with_its_direction(tmp_path):
    outcome = run(parse_scenario(_regression(run={"rounds": 2}, personal={"holdout": 0.25},
                                             evaluation={"clients": "all", "worst_k": 2})), results_root=tmp_path)
    evaluation = pd.read_parquet(outcome.run_dir / "evaluation.parquet")
    assert {"global_mse", "global_r2", "personal_mse"} <= set(evaluation.columns) and len(evaluation) == 12
    last = _rounds(outcome.run_dir).iloc[-1]
    worst = evaluation[evaluation["round"] == 2]["global_mse"].nlargest(2).mean()
    assert last["client_global_mse_worst_k"] == pytest.approx(worst) and "client_global_mse_max" in last


def test_compare_judges_regression_runs_by_mse_and_needs_a_target(tmp_path, capsys):
    outcome = run(parse_scenario(_regression(run={"rounds": 3})), results_root=tmp_path / "runs")
    assert main(["compare", str(outcome.run_dir), "--out", str(tmp_path / "cmp")]) == 2
    assert "--target is needed: the runs are judged by mse (lower is better)" in capsys.readouterr().err
    target = float(_rounds(outcome.run_dir)["test_mse"].iloc[1]) + 1e-9
    assert main(["compare", str(outcome.run_dir), "--target", str(target), "--out", str(tmp_path / "cmp")]) == 0
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert table[f"rounds_to_{target:g}"].iloc[0] <= 2 and "final_mse" in table


def test_a_sweep_of_regression_runs_is_summarised_and_reported_by_mse(tmp_path):
    from raysim.results.results import load, write_sweep_index
    from raysim.results.summary import summarize

    sweep, trials = tmp_path / "sweep", {}
    for index, (lr, seed) in enumerate([(0.01, 0), (0.01, 1), (0.1, 0), (0.1, 1)]):
        name = f"reg-t{index}"
        table = _regression(run={"rounds": 2, "seed": seed, "name": name}, client={"lr": lr})
        run(parse_scenario(table), results_root=sweep / "trials")
        trials[name] = {"client.lr": lr, "run.seed": seed}
    write_sweep_index(sweep, name="reg", keys=["client.lr", "run.seed"], trials=trials)
    results = load(sweep)
    arms = summarize(results.summary, by=["client.lr"], metric=f"final_{results.metric.name}").arms
    assert results.metric.name == "mse" and len(arms) == 2 and arms["mean"].notna().all()
    assert main(["report", str(sweep), "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "Sweep: final test mse over seeds" in page and "Test mse" in page and "accuracy" not in page


def test_leaf_femnist_writers_are_the_clients(tmp_path):
    scenario = tiny_table(run={"rounds": 2}, data=LEAF["femnist"]["data"], selection={"clients_per_round": 2})
    outcome = run(parse_scenario(scenario), results_root=tmp_path)
    rounds = _rounds(outcome.run_dir)
    assert rounds["test_accuracy"].notna().all() and outcome.summary["metric"] == "accuracy"
    partition = pd.read_parquet(outcome.run_dir / "partition.parquet")
    assert partition.groupby("client_id")["count"].sum().tolist() == [6, 9, 9, 7]  # the writers' train examples


def test_leaf_shakespeare_trains_the_char_lstm_on_next_characters(tmp_path):
    scenario = tiny_table(run={"rounds": 2}, data={"dataset": "leaf", "num_clients": 3,
                                                   "path": str(FIXTURES / "leaf" / "shakespeare")},
                          task={"kind": "next_token"}, model={"name": "char_lstm"}, client={"lr": 0.5},
                          selection={"clients_per_round": 3})
    outcome = run(parse_scenario(scenario), results_root=tmp_path)
    rounds = _rounds(outcome.run_dir)
    assert {"test_accuracy", "test_perplexity"} <= set(rounds.columns)
    assert (rounds["test_perplexity"] < 80).all()  # better than guessing among the 80 characters
    assert rounds["test_perplexity"].iloc[-1] < rounds["test_perplexity"].iloc[0]


def test_a_user_function_and_a_user_task(tmp_path):
    scenario = tiny_table(run={"rounds": 3}, data={"dataset": "tests.user_code:sensor_readings", "num_clients": 4,
                                                   "options": {"sites": 4}},
                          task={"kind": "tests.user_code:HuberTask", "options": {"tolerance": 0.5}},
                          model={"name": "linear_regressor"}, selection={"clients_per_round": 4})
    outcome = run(parse_scenario(scenario), results_root=tmp_path)
    rounds = _rounds(outcome.run_dir)
    assert {"test_huber", "test_within", "test_loss"} <= set(rounds.columns)
    assert outcome.summary["metric"] == "huber" and outcome.summary["best_huber"] == rounds["test_huber"].min()
    sizes = pd.read_parquet(outcome.run_dir / "clients.parquet").groupby("client_id")["samples"].first()
    assert set(sizes) == {30}  # one client per site, as the function named them


@pytest.mark.parametrize("sections, message", [
    ({"data": {**TABLE, "label": "price"}}, "data.label"),
    ({"data": {**TABLE, "client": "region", "num_clients": 1}, "selection": {"clients_per_round": 1}}, "data.client"),
    ({"model": {"name": "cnn"}}, "model.name = 'cnn' predicts classes, but task.kind = 'regression' needs values"),
    ({"task": {"kind": "classification"}, "model": {"name": "logreg"}}, "set [task] kind = 'regression'"),
    ({"data": {**TABLE, "partition": {"kind": "dirichlet", "beta": 0.5}, "client": "",
               "features": ["temperature", "humidity", "pressure", "wind"]}},
     "data.partition = 'dirichlet' splits by class"),
    ({"data": {"dataset": "tests.user_code:misshapen_readings", "num_clients": 4, "partition": "iid"}},
     "test_x examples are (2,)"),
    ({"data": {"dataset": "leaf", "path": str(FIXTURES / "table"), "num_clients": 4}}, "train"),
])
def test_bad_data_or_task_exits_2_naming_the_key_and_writes_nothing(tmp_path, capsys, sections, message):
    import tomli_w

    table = _regression(**sections)
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(table))
    assert main(["run", str(path), "--results", str(tmp_path / "results"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
