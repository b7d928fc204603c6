"""Interrupted runs resume from their last checkpoint and end exactly as uninterrupted ones."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from raysim.api import run
from raysim.cli import main

SIM_COLUMNS = ["round", "sim_time", "clients", "test_accuracy", "test_loss", "train_loss", "bytes_up"]


def _interrupt_after(round_number: int):
    def on_round(row: dict) -> None:
        if row["round"] == round_number:
            raise KeyboardInterrupt

    return on_round


@pytest.mark.parametrize("sections", [
    {},
    {"policy": {"kind": "async", "mode": "fedbuff", "buffer_size": 2}, "system": {"dropout": 0.2,
                                                                                 "speed_distribution": "lognormal"}},
    {"server": {"strategy": "scaffold", "weighting": "uniform"}},
    {"compression": {"uplink": "topk", "ratio": 0.1, "error_feedback": True, "downlink": "bf16"}},
    {"server": {"weighting": "uniform"}, "privacy": {"dp": "central", "noise_multiplier": 0.8,
                                                     "secure_aggregation": "secagg"}},
    {"policy": {"kind": "periodic", "period_s": 10.0, "staleness": {"kind": "polynomial", "a": 0.5}}},
    {"policy": {"kind": "event", "threshold": 1.5, "alpha": 0.5}},
    {"policy": {"kind": "hybrid", "min_updates": 2, "deadline_s": 12.0, "late_updates": "stale"}},
    {"selection": {"selector": {"kind": "oort", "pacer_step": 1}}, "system": {"speed_distribution": "lognormal"}},
    {"selection": {"selector": {"kind": "power_of_choice", "d": 6}}, "system": {"dropout": 0.2}},
])
def test_resumed_run_ends_with_the_uninterrupted_metrics(tiny, tmp_path, sections):
    scenario = tiny(run={"rounds": 6}, **sections)
    whole = run(scenario, results_root=tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run(scenario, results_root=tmp_path / "cut", on_round=_interrupt_after(3))
    (cut_dir,) = (tmp_path / "cut" / "tiny").iterdir()
    assert json.loads((cut_dir / "summary.json").read_text())["status"] == "interrupted"
    assert len(pd.read_parquet(cut_dir / "rounds.parquet")) == 3  # nothing recorded is lost
    assert (cut_dir / "checkpoint.zip").stat().st_size < 1_000_000  # driver state only, no executor or data
    resumed = run(scenario, resume=cut_dir)
    assert resumed.run_dir == cut_dir and resumed.summary["resumed_after_round"] == 3
    pd.testing.assert_frame_equal(pd.read_parquet(whole.run_dir / "rounds.parquet")[SIM_COLUMNS],
                                  pd.read_parquet(cut_dir / "rounds.parquet")[SIM_COLUMNS])
    whole_clients = pd.read_parquet(whole.run_dir / "clients.parquet").drop(columns=["wall_train_s"])
    cut_clients = pd.read_parquet(cut_dir / "clients.parquet").drop(columns=["wall_train_s"])
    pd.testing.assert_frame_equal(whole_clients, cut_clients)


def test_resume_from_the_cli(tiny, tmp_path, capsys):
    import tomli_w

    from tests.conftest import tiny_table

    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table(run={"rounds": 4})))
    with pytest.raises(KeyboardInterrupt):
        run(tiny(run={"rounds": 4}), results_root=tmp_path / "res", on_round=_interrupt_after(2))
    (cut_dir,) = (tmp_path / "res" / "tiny").iterdir()
    assert main(["run", "--resume", str(cut_dir), "--quiet"]) == 0
    assert list(pd.read_parquet(cut_dir / "rounds.parquet")["round"]) == [1, 2, 3, 4]
    assert main(["run", str(path), "--resume", str(cut_dir)]) == 2
    capsys.readouterr()
    no_checkpoint = tmp_path / "copied"
    no_checkpoint.mkdir()
    (no_checkpoint / "scenario.toml").write_text((cut_dir / "scenario.toml").read_text())
    assert main(["run", "--resume", str(no_checkpoint)]) == 2
    assert "has no checkpoint.zip" in capsys.readouterr().err
