"""Damaged, half-written or foreign results: one line naming the file, exit 2, nothing run."""

from __future__ import annotations

import shutil

import pytest

from raysim.api import run
from raysim.cli import main


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished tiny run (local executor, 2 rounds, a checkpoint every round)."""
    from raysim.scenario.sections import parse_scenario
    from tests.conftest import tiny_table

    root = tmp_path_factory.mktemp("results")
    return run(parse_scenario(tiny_table(run={"rounds": 2})), results_root=root).run_dir


@pytest.fixture
def copy(finished, tmp_path):
    target = tmp_path / "res" / "tiny" / finished.name
    shutil.copytree(finished, target)
    return target


def _compare(path, tmp_path, capsys) -> str:
    assert main(["compare", str(path), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


def test_corrupt_rounds_table_is_named(copy, tmp_path, capsys):
    path = copy / "rounds.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert "rounds.parquet is not a readable Parquet table" in _compare(copy, tmp_path, capsys)


def test_foreign_table_is_named(copy, tmp_path, capsys):
    import pandas as pd

    pd.DataFrame({"x": [1]}).to_parquet(copy / "clients.parquet")
    assert "clients.parquet lacks the columns ['round', 'status', 'staleness']" in _compare(copy, tmp_path, capsys)


def test_half_written_run_folder_is_named(copy, tmp_path, capsys):
    (copy / "clients.parquet").unlink()
    assert "clients.parquet is missing next to rounds.parquet" in _compare(copy, tmp_path, capsys)


def test_runs_without_rounds_are_nothing_to_compare(copy, tmp_path, capsys):
    for name in ("rounds.parquet", "clients.parquet"):
        (copy / name).unlink()
    assert "finished a round: nothing to compare" in _compare(copy.parent, tmp_path, capsys)


def test_damaged_summary_is_named(copy, tmp_path, capsys):
    (copy / "summary.json").write_bytes(b"{\"status\": \xff")
    assert "summary.json is not readable JSON" in _compare(copy, tmp_path, capsys)


def test_compare_out_that_is_a_file_is_named(copy, tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    assert main(["compare", str(copy), "--out", str(tmp_path / "taken")]) == 2
    assert "--out" in capsys.readouterr().err


def test_a_results_root_that_is_a_file_is_named(tmp_path, capsys):
    import tomli_w

    from tests.conftest import tiny_table

    (tmp_path / "taken").write_text("")
    scenario = tmp_path / "s.toml"
    scenario.write_text(tomli_w.dumps(tiny_table(run={"rounds": 1})))
    assert main(["run", str(scenario), "--results", str(tmp_path / "taken"), "--quiet"]) == 2
    assert "cannot create the run folder" in capsys.readouterr().err
