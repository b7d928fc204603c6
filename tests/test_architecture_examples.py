"""The worked examples of docs/architecture.md, done exactly as the document says: each adds one
thing to a registry (a server optimizer, a round policy, a data set, a model), names it in a
scenario, and runs it end to end. The code below is the code in the document; if one changes,
change the other."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from torch import nn

from raysim.algorithms.server_opt import SERVER_OPTIMIZERS, ServerOptState, as_update
from raysim.api import run
from raysim.data.datasets import DATASETS, Dataset, DatasetInfo
from raysim.models.models import MODELS, ModelInfo
from raysim.results import load
from raysim.scenario.sections import parse_scenario
from raysim.sim.policies import POLICIES, Aggregate, Arrival, Dispatch, Failure
from tests.conftest import tiny_table, whole_and_resumed

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


# -- a policy: a new round policy (raysim/sim/policies/sequential.py) ---------------------------


@dataclass(frozen=True, kw_only=True)
class SequentialPolicy:
    """``[policy] kind = "sequential"``: one client at a time, its update applied on arrival."""

    kind: ClassVar[str] = "sequential"

    def build(self) -> "SequentialRounds":
        return SequentialRounds()


class SequentialRounds:
    def start(self, view) -> list:
        return [Dispatch(count=1)]

    def on_event(self, event, view) -> list:
        if isinstance(event, Arrival):
            return [Aggregate((event.task.task_id,)), Dispatch(count=1)]
        if isinstance(event, Failure):
            return [Dispatch(count=1)]
        return []  # Dispatched, Timer: nothing to do


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


# -- a model (raysim/models/models.py) ---------------------------------------------------------


def _tiny_mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 16), nn.ReLU(), nn.Linear(16, num_classes))


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


def test_a_new_policy_runs_by_name(monkeypatch, tmp_path):
    monkeypatch.setitem(POLICIES, "sequential", SequentialPolicy)
    results = _run(tmp_path, policy={"kind": "sequential"})
    assert len(results.rounds) == 4
    assert (results.rounds.clients <= 1).all()  # one update per server step
    assert results.rounds.sim_time.is_monotonic_increasing


def test_a_new_policy_is_checkpointed_and_resumes_exactly(monkeypatch, tmp_path):
    """Its state is checkpointed as data like a built-in's: the class comes from the scenario's
    own driver on resume, never from the file."""
    monkeypatch.setitem(POLICIES, "sequential", SequentialPolicy)
    whole, resumed = whole_and_resumed(parse_scenario(tiny_table(policy={"kind": "sequential"})), tmp_path, after=2)
    columns = ["round", "sim_time", "test_accuracy", "clients"]
    pd.testing.assert_frame_equal(load(whole).rounds[columns], load(resumed).rounds[columns])


def test_a_new_dataset_runs_by_name(monkeypatch, tmp_path):
    monkeypatch.setitem(DATASETS, "blobs", DatasetInfo("two Gaussian blobs in the plane", (2,), 2, load=load_blobs))
    results = _run(tmp_path, data={"dataset": "blobs", "num_clients": 8, "partition": "iid"}, run={"rounds": 3},
                   client={"lr": 0.5})
    assert results.rounds.test_accuracy.iloc[-1] > 0.9  # the blobs are two units apart: easy


def test_a_new_model_runs_by_name(monkeypatch, tmp_path):
    monkeypatch.setitem(MODELS, "tiny_mlp", ModelInfo("MLP with one hidden layer of 16 units", _tiny_mlp))
    results = _run(tmp_path, model={"name": "tiny_mlp"})
    assert len(results.rounds) == 4 and results.rounds.test_accuracy.notna().all()


@pytest.mark.parametrize("registry, name", [(SERVER_OPTIMIZERS, "sign"), (POLICIES, "sequential"),
                                            (DATASETS, "blobs"), (MODELS, "tiny_mlp")])
def test_the_examples_leave_the_registries_as_they_were(registry, name):
    assert name not in registry


def test_the_document_shows_this_code():
    """Each Python block of docs/architecture.md, but for its registry line, is code of this file."""
    document = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", document, flags=re.S)
    source = Path(__file__).read_text()
    assert len(blocks) == 4
    for block in blocks:
        code = re.sub(r"\n*^[A-Z_]+\[\"\w+\"\] = .*\n", "\n", block, flags=re.M).strip()
        assert code in source, code
