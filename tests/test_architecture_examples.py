"""The worked examples of docs/architecture.md, done exactly as the document says: each adds one
thing to a registry (a server optimizer, a data set), names it in a
scenario, and runs it end to end. The code below is the code in the document; if one changes,
change the other."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from raysim.algorithms.server_opt import SERVER_OPTIMIZERS, ServerOptState, as_update
from raysim.api import run
from raysim.data.datasets import DATASETS, Dataset, DatasetInfo
from raysim.results import load
from raysim.scenario.sections import parse_scenario
from tests.conftest import tiny_table

# -- a strategy: a new server optimizer (raysim/algorithms/server_opt.py) ------------------------


@dataclass(frozen=True, kw_only=True)
class SignSGD:
    """Server signSGD: ``w <- w + lr * sign(D)``, every coordinate moved by exactly lr."""

    lr: float

    def init(self, params: np.ndarray) -> ServerOptState:
        return ServerOptState(step=0)

    def apply(self, params: np.ndarray, delta: np.ndarray, state: ServerOptState) -> tuple[np.ndarray, ServerOptState]:
        delta = as_update(params, delta)
        moved = params.astype(np.float64) + self.lr * np.sign(delta)
        return moved.astype(params.dtype), ServerOptState(step=state.step + 1)


# -- a data set (raysim/data/datasets.py) ------------------------------------------------------


def load_blobs(*, root: str | None = None, download: bool = False) -> Dataset:
    """Two Gaussian blobs in the plane, one per class; the same in every run (seed 0)."""
    draw = np.random.default_rng(0)
    centres = np.array([[-2.0, 0.0], [2.0, 0.0]])

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = draw.integers(0, 2, n)
        return (centres[labels] + draw.normal(size=(n, 2))).astype(np.float32), labels.astype(np.int64)

    (train_x, train_y), (test_x, test_y) = split(800), split(200)
    return Dataset(name="blobs", train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                   num_classes=2, input_shape=(2,))


def _run(tmp_path, **sections):
    outcome = run(parse_scenario(tiny_table(**sections)), results_root=tmp_path)
    return load(outcome.run_dir)


def test_a_new_server_optimizer_runs_by_name(monkeypatch, tmp_path):
    monkeypatch.setitem(SERVER_OPTIMIZERS, "sign", SignSGD)
    params = np.zeros(3, dtype=np.float32)
    moved, state = SignSGD(lr=0.1).apply(params, np.array([2.0, -0.5, 0.0]), SignSGD(lr=0.1).init(params))
    np.testing.assert_allclose(moved, [0.1, -0.1, 0.0], rtol=1e-6)
    assert state.step == 1
    results = _run(tmp_path, server={"optimizer": "sign", "lr": 0.01})
    assert len(results.rounds) == 4 and results.rounds.test_accuracy.notna().all()


def test_a_new_dataset_runs_by_name(monkeypatch, tmp_path):
    monkeypatch.setitem(DATASETS, "blobs", DatasetInfo("two Gaussian blobs in the plane", (2,), 2, load=load_blobs))
    results = _run(tmp_path, data={"dataset": "blobs", "num_clients": 8, "partition": "iid"}, run={"rounds": 3},
                   client={"lr": 0.5})
    assert results.rounds.test_accuracy.iloc[-1] > 0.9  # the blobs are two units apart: easy


@pytest.mark.parametrize("registry, name", [(SERVER_OPTIMIZERS, "sign"), (DATASETS, "blobs")])
def test_the_examples_leave_the_registries_as_they_were(registry, name):
    assert name not in registry


def python_blocks(heading: str) -> list[str]:
    """The Python blocks of docs/architecture.md's section ``heading`` (up to the next "## ")."""
    document = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    section = document[document.index(heading):]
    section = section[:section.index("\n## ", 10)] if "\n## " in section[10:] else section
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_document_shows_this_code():
    """Each Python block of docs/architecture.md's "Inside raysim", but for its registry line, is
    code of this file (those of "Write your own": tests/test_write_your_own.py)."""
    blocks = python_blocks("## Inside raysim")
    source = Path(__file__).read_text()
    assert len(blocks) == 2
    for block in blocks:
        code = re.sub(r"\n*^[A-Z_]+\[\"\w+\"\] = .*\n", "\n", block, flags=re.M).strip()
        assert code in source, code
