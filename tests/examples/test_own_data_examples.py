"""The own-data examples as a user runs them, from outside raysim: the smart-city regression
(FedAvg, FedProx and local-only by each site's MSE), LEAF's Synthetic at 1,000 clients and
next-character prediction on the Shakespeare-format fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.examples.conftest import EXAMPLES, ROOT


def _run(args: list[str], *, package: str | None, cwd: Path) -> subprocess.CompletedProcess:
    paths = [str(EXAMPLES / package)] if package else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_the_smart_city_sites_are_the_clients_and_the_generator_is_seeded():
    sys.path.insert(0, str(EXAMPLES / "smart_city"))
    try:
        from smart_city.sensors import readings
    finally:
        sys.path.remove(str(EXAMPLES / "smart_city"))
    first, again, other = readings(0), readings(0), readings(1)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["train_y"], other["train_y"])
    assert sorted(set(first["train_client"].tolist())) == list(range(20))


def test_smart_city_compares_fedavg_fedprox_and_local_only_per_site(tmp_path):
    out = tmp_path / "compare.json"
    _run(["-m", "smart_city.compare", "--rounds", "3", "--results", str(tmp_path / "results"), "--out", str(out)],
         package="smart_city", cwd=tmp_path)
    rows = {r["method"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"fedavg", "fedprox", "site_bias", "local_only"}
    assert sum(r["sites_best"] for r in rows.values()) == 20
    assert all(r["worst_site_mse"] >= r["mean_site_mse"] > 0 for r in rows.values())


def test_leaf_synthetic_runs_at_a_thousand_clients(tmp_path):
    _run(["-m", "raysim", "run", str(EXAMPLES / "leaf_synthetic" / "leaf_synthetic.toml"), "--set", "run.rounds=2",
          "--set", "run.eval_every=1", "--results", str(tmp_path / "results"), "--quiet"],
         package="leaf_synthetic", cwd=tmp_path)
    (run_dir,) = (tmp_path / "results" / "leaf_synthetic").iterdir()
    partition = pd.read_parquet(run_dir / "partition.parquet")
    assert partition["client_id"].nunique() == 1000
    rounds = pd.read_parquet(run_dir / "rounds.parquet")
    assert rounds["test_accuracy"].notna().all() and len(rounds) == 2


def test_shakespeare_next_characters_from_the_repository_root(tmp_path):
    _run(["-m", "raysim", "run", str(EXAMPLES / "shakespeare" / "shakespeare.toml"), "--set", "run.rounds=2",
          "--results", str(tmp_path / "results"), "--quiet"], package=None, cwd=ROOT)
    (run_dir,) = (tmp_path / "results" / "shakespeare").iterdir()
    rounds = pd.read_parquet(run_dir / "rounds.parquet")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metric"] == "accuracy" and rounds["test_perplexity"].notna().any()
