"""Comparing runs: time-to-accuracy on the best-so-far curve, and the compare command."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from raysim.api import run
from raysim.cli import main
from raysim.results.report import time_to_target


def _rounds(acc, times):
    return pd.DataFrame({"round": range(1, len(acc) + 1), "sim_time": times, "test_accuracy": acc})


def test_time_to_target_interpolates_the_best_so_far_curve():
    rounds = _rounds([0.5, 0.7, 0.65, 0.9], [10.0, 20.0, 30.0, 40.0])
    # best so far: 0.5 0.7 0.7 0.9 -> crosses 0.8 halfway between t=30 and t=40
    assert time_to_target(rounds, 0.8) == pytest.approx(35.0)
    assert time_to_target(rounds, 0.8, x="round") == pytest.approx(3.5)


def test_time_to_target_is_nan_when_never_reached_and_first_point_when_met_at_once():
    rounds = _rounds([0.5, 0.6], [1.0, 2.0])
    assert math.isnan(time_to_target(rounds, 0.9))
    assert time_to_target(rounds, 0.4) == 1.0


def test_compare_writes_a_table_and_a_plot(tiny, tmp_path, capsys):
    for policy in ({"kind": "sync"}, {"kind": "async", "mode": "fedbuff", "buffer_size": 2}):
        run(tiny(run={"name": f"cmp_{policy['kind']}", "rounds": 3}, policy=policy), results_root=tmp_path / "res")
    assert main(["compare", str(tmp_path / "res"), "--target", "0.3", "--out", str(tmp_path / "cmp")]) == 0
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert sorted(table["scenario"]) == ["cmp_async", "cmp_sync"]
    assert {"sim_time_to_0.3", "rounds_to_0.3", "messages_saved"} <= set(table.columns)
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 0


def test_compare_without_runs_exits_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "no raysim runs" in capsys.readouterr().err
