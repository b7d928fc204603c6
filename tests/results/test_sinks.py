"""Tracking sinks hold exactly the rows of rounds.parquet (skipped where the extra is missing)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from raysim.cli import main
from raysim.results.sinks import metrics_of
from tests.conftest import tiny_table


STAMP = "20200101-000000"


def _run(tmp_path: Path, sink: str, monkeypatch) -> tuple[pd.DataFrame, Path, str]:
    """(rounds.parquet, the tracking folder, the run id). Every timestamp is one second, taken by
    a run that already has a folder, so the new run's folder is ``<stamp>-2``: a sink that names
    its run by a timestamp of its own no longer matches it (issue 24, 9)."""
    format_time = time.strftime
    monkeypatch.setattr(time, "strftime", lambda f, *a: STAMP if f == "%Y%m%d-%H%M%S" else format_time(f, *a))
    (tmp_path / "tiny" / STAMP).mkdir(parents=True)
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(tomli_w.dumps(tiny_table(run={"eval_every": 2, "rounds": 5})))
    assert main(["run", str(scenario), "--results", str(tmp_path), "--quiet", "--track", sink]) == 0
    (rounds,) = tmp_path.glob("tiny/*/rounds.parquet")
    assert rounds.parent.name == f"{STAMP}-2"
    return pd.read_parquet(rounds), tmp_path / "tracking", rounds.parent.name


def _expected(rounds: pd.DataFrame) -> dict[str, list[tuple[int, float]]]:
    """Each metric's (round, value) pairs: the finite numbers of each column."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rounds.to_dict("records"):
        for key, value in metrics_of(row).items():
            series.setdefault(key, []).append((int(row["round"]), value))
    return series


def _same(got: dict, expected: dict, rel: float) -> None:
    assert set(got) == set(expected)
    for key, pairs in expected.items():
        assert [s for s, _ in got[key]] == [s for s, _ in pairs], key
        assert all(math.isclose(a, b, rel_tol=rel, abs_tol=1e-12) for (_, a), (_, b) in zip(got[key], pairs)), key


def test_metrics_leave_out_the_step_and_values_that_are_not_finite_numbers():
    assert metrics_of({"round": 3, "test_accuracy": float("nan"), "clients": 4, "kind": "x", "flag": True}) == \
        {"clients": 4.0}


def test_tensorboard_holds_exactly_the_rows_of_rounds_parquet(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    rounds, folder, run_id = _run(tmp_path, "tensorboard", monkeypatch)
    (log_dir,) = folder.glob("tensorboard/tiny/*")
    assert log_dir.name == run_id  # the tracked run and its folder have one name
    events = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0})
    events.Reload()
    got = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert rounds["test_accuracy"].isna().any()  # rounds that were not evaluated: left out
    _same(got, _expected(rounds), rel=1e-6)  # TensorBoard keeps float32


def test_mlflow_holds_exactly_the_rows_of_rounds_parquet(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    rounds, folder, run_id = _run(tmp_path, "mlflow", monkeypatch)
    client = MlflowClient(tracking_uri=(folder / "mlruns").absolute().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.run_name == run_id  # the tracked run and its folder have one name
    assert run.data.params["client.lr"] == "0.05"
    got = {key: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key),
                                                    key=lambda m: m.step)] for key in run.data.metrics}
    _same(got, _expected(rounds), rel=0)
