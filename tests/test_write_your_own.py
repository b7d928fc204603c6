"""docs/architecture.md's "Write your own", as written: each Python block there is a file of the
user package ``examples/write_your_own/yours``, and the package runs from outside raysim/ in
this process and on Ray through the command line, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raysim.api import run
from raysim.results import load
from raysim.scenario.sections import load_scenario

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "examples" / "write_your_own"


def test_the_document_shows_the_package_files():
    document = (ROOT / "docs" / "architecture.md").read_text()
    section = document[document.index("## Write your own"):document.index("## Inside raysim")]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    files = {path.read_text() for path in (PACKAGE / "yours").glob("*.py") if path.name != "__init__.py"}
    assert len(blocks) == 6 and set(blocks) == files


@pytest.fixture
def yours(monkeypatch):
    monkeypatch.syspath_prepend(str(PACKAGE))
    return load_scenario(PACKAGE / "yours.toml", ("run.executor=local", "run.rounds=6"))


def test_the_package_runs_in_process_with_its_state_metrics_and_policy(yours, tmp_path):
    results = load(run(yours, results_root=tmp_path).run_dir)
    rounds, clients = results.rounds, results.clients
    assert len(rounds) == 6 and rounds.clients.eq(1).all()  # Sequential: one update per server step
    assert rounds.median_norm.gt(0).all() and rounds.test_accuracy.notna().all()
    applied = clients[clients.status == "applied"].sort_values("round")
    assert applied.metric_rounds.tolist() == (applied.groupby("client_id").cumcount() + 1).tolist()
    assert applied.metric_drift.gt(0).all()


def test_the_same_objects_handed_to_run_give_the_same_rounds(yours, tmp_path):
    from yours.client import ProxSGD
    from yours.policy import Sequential
    from yours.strategy import CoordinateMedian

    named = load(run(yours, results_root=tmp_path / "named").run_dir).rounds
    handed = load(run(yours, results_root=tmp_path / "handed", client_algorithm=ProxSGD(mu=0.01),
                      strategy=CoordinateMedian(lr=1.0), policy=Sequential(first=3)).run_dir).rounds
    np.testing.assert_array_equal(named.test_accuracy, handed.test_accuracy)


def test_the_functional_client_trains_the_same_vectorised_or_client_by_client(tiny, monkeypatch, tmp_path):
    """The functional form's example (``yours.functional:OwnProx``) on 8 clients of equal size:
    its rounds as one batch of 4 models and client by client agree within float32 rounding."""
    from raysim.models.functional import FunctionalClient

    monkeypatch.syspath_prepend(str(PACKAGE))
    sizes, train_batch = [], FunctionalClient.train_batch
    monkeypatch.setattr(FunctionalClient, "train_batch", lambda self, tasks: sizes.append(len(tasks))
                        or train_batch(self, tasks))
    sections = {"data": {"dataset": "tests.examples.feddyn_reference:points", "partition": "iid", "num_clients": 8},
                "client": {"algorithm": "yours.functional:OwnProx", "algorithm_options": {"mu": 0.5},
                           "batch_size": 5}, "model": {"name": "yours.model:TinyMLP"}, "run": {"rounds": 3}}
    tables = {}
    for vectorize in ("off", "on"):
        results = load(run(tiny(**sections, resources={"vectorize": vectorize}),
                           results_root=tmp_path / vectorize).run_dir)
        tables[vectorize] = results.rounds[["round", "test_accuracy", "test_loss", "train_loss"]]
    assert sizes == [4, 4, 4] and tables["on"].test_accuracy.iloc[-1] > 0.4
    pd.testing.assert_frame_equal(tables["off"], tables["on"], check_exact=False, rtol=1e-5, atol=1e-6)


def test_the_package_runs_on_ray_from_the_command_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "raysim", "run", str(PACKAGE / "yours.toml"), "--set", "run.rounds=4",
                           "--results", str(tmp_path), "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (rounds,) = tmp_path.rglob("rounds.parquet")
    assert len(pd.read_parquet(rounds)) == 4


def test_the_readmes_notebook_cell_runs_as_written(tmp_path, monkeypatch):
    """README's "From a notebook or a script": the cell, run as a notebook runs it (its class in
    ``__main__``), leaves five rounds, a record naming the class and its options, and a model."""
    import shutil

    import torch

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### From a notebook or a script: the Python API"):]
    (cell,) = re.findall(r"```python\n(.*?)```", section[:section.index("\n### ", 10)], flags=re.S)
    (tmp_path / "scenarios").mkdir()
    shutil.copy(ROOT / "scenarios" / "quickstart.toml", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    exec(compile(cell, "README.md cell", "exec"), namespace)
    outcome, rounds, model = namespace["outcome"], namespace["rounds"], namespace["model"]
    assert rounds["round"].tolist() == [1, 2, 3, 4, 5] and rounds.test_accuracy.gt(0.1).all()
    record = (outcome.run_dir / "scenario.toml").read_text()
    assert 'algorithm = "__main__:ScaledSGD"' in record and "scale = 0.5" in record
    assert isinstance(model, torch.nn.Module)
