"""The command line: exit codes, messages, and nothing written on bad input."""

from __future__ import annotations

import pytest

from raysim.cli import main
from tests.conftest import tiny_table


def _write(path, table: dict) -> str:
    import tomli_w

    path.write_text(tomli_w.dumps(table))
    return str(path)


def test_validate_accepts_the_quickstart(capsys):
    assert main(["validate", "scenarios/quickstart.toml"]) == 0
    assert "valid scenario" in capsys.readouterr().err


def test_validate_names_the_bad_key_and_exits_2(tmp_path, capsys):
    path = _write(tmp_path / "s.toml", tiny_table(client={"batch_size": -1}))
    assert main(["validate", path]) == 2
    assert "client: batch_size must be >= 0" in capsys.readouterr().err


def test_bad_override_exits_2(capsys):
    assert main(["validate", "scenarios/quickstart.toml", "--set", "run.rounds=zero"]) == 2
    assert "run.rounds must be an integer" in capsys.readouterr().err


def test_missing_scenario_file_exits_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_missing_dataset_exits_2_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RAYSIM_DATA", str(tmp_path / "empty"))
    table = tiny_table(data={"dataset": "mnist", "partition": "iid", "root": str(tmp_path / "nowhere")})
    path = _write(tmp_path / "s.toml", table)
    results = tmp_path / "results"
    assert main(["run", path, "--results", str(results), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "apt-get" in err or "download" in err
    assert not results.exists()


def test_impossible_partition_exits_2_and_writes_nothing(tmp_path, capsys):
    table = tiny_table(data={"dataset": "fashion_mnist", "partition": {"kind": "labels", "labels": 11}})
    path = _write(tmp_path / "s.toml", table)
    results = tmp_path / "results"
    code = main(["run", path, "--results", str(results), "--quiet"])
    if code == 2 and "not found" in capsys.readouterr().err.lower():
        pytest.skip("Fashion-MNIST is not installed")
    assert code == 2
    assert not results.exists()


def test_run_writes_a_run_folder_and_prints_a_summary(tmp_path, capsys):
    path = _write(tmp_path / "s.toml", tiny_table(run={"rounds": 2}))
    assert main(["run", path, "--results", str(tmp_path / "results"), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "results" / "tiny").iterdir()
    assert {p.name for p in run_dir.iterdir()} >= {"rounds.parquet", "clients.parquet", "partition.parquet",
                                                   "summary.json", "scenario.toml", "accuracy.png"}
    assert "final_accuracy" in capsys.readouterr().out


def test_list_shows_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("fashion_mnist", "synthetic", "cnn", "dirichlet", "fedavg", "sync", "table", "leaf",
                 "package.module:function"):
        assert name in out
