"""Evaluation as sums over slices: spread over workers, it adds up to the whole."""

from __future__ import annotations

import math

import numpy as np
import torch

from raysim.algorithms.sgd import SGDConfig
from raysim.models.params import FlatModel
from raysim.models.spec import ModelSpec
from raysim.models.learning_task import Classification
from raysim.models.training import evaluate
from raysim.runtime.worker import ClientWorker
from raysim.sim.kernel.evaluation import EVAL_CHUNK, EvalCounts, EvalSlice, central_slices, summarise
from raysim.sim.kernel.evaluation import holdout_rows, holdout_slices
from raysim.sim.kernel.tasks import ClientIndices, TrainingPlan

RNG = np.random.default_rng(0)
TRAIN_X = RNG.normal(size=(30, 4)).astype(np.float32)
TRAIN_Y = RNG.integers(0, 3, size=30)
TEST_X = RNG.normal(size=(2500, 4)).astype(np.float32)
TEST_Y = RNG.integers(0, 3, size=2500)
SPEC = ModelSpec("logreg", (4,), 3)  # Linear(4, 3): 12 weights, then 3 biases
PARAMS = RNG.normal(size=15).astype(np.float32)


def _worker(local_layers: tuple[str, ...] = ()) -> ClientWorker:
    plan = TrainingPlan(batch_size=5, sgd=SGDConfig(lr=0.1), seed=0, local_layers=local_layers)
    shards = ClientIndices.from_parts([np.arange(0, 10), np.arange(10, 20), np.arange(20, 30)])
    return ClientWorker(model=SPEC, plan=plan, train_x=TRAIN_X, train_y=TRAIN_Y, shards=shards,
                        test_x=TEST_X, test_y=TEST_Y)


def _whole(params: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    model = FlatModel(SPEC.build())
    model.load(params)
    sums = evaluate(model, torch.as_tensor(x), torch.as_tensor(y), task=Classification())
    return sums["correct"], sums["loss"]


def test_the_test_set_is_cut_into_fixed_chunks():
    slices = central_slices(2500)
    assert [(s.indices[0], s.indices[-1]) for s in slices] == [(0, 999), (1000, 1999), (2000, 2499)]
    assert all(s.split == "test" and s.head is None for s in slices) and EVAL_CHUNK == 1000


def test_summarise_adds_counts_and_is_nan_without_examples():
    task = Classification()
    scores = summarise([EvalCounts(4, {"correct": 3, "loss": 1.5, "count": 4}),
                        EvalCounts(4, {"correct": 1, "loss": 0.5, "count": 4})], task)
    assert scores == {"accuracy": 0.5, "loss": 0.25}
    assert list(summarise([], task)) == ["accuracy", "loss"] and all(math.isnan(v) for v in summarise([], task).values())


def test_chunks_scored_on_a_worker_add_up_to_the_whole_test_set():
    counts = _worker().evaluate(PARAMS, central_slices(len(TEST_Y)))
    correct, loss_sum = _whole(PARAMS, TEST_X, TEST_Y)
    assert [c.count for c in counts] == [1000, 1000, 500]
    assert sum(c.sums["correct"] for c in counts) == correct
    assert math.isclose(math.fsum(c.sums["loss"] for c in counts), loss_sum, rel_tol=1e-5)


def test_a_slice_with_a_head_scores_the_personalised_model():
    head = np.full(3, 5.0, np.float32)  # the biases: "1.bias" (after Flatten) is the local layer
    worker = _worker(local_layers=("1.bias",))
    (plain, personal) = worker.evaluate(PARAMS, [EvalSlice("train", np.arange(10)),
                                                 EvalSlice("train", np.arange(10), head=head)])
    personalised = PARAMS.copy()
    personalised[12:] = head
    assert (plain.sums["correct"], plain.count) == (_whole(PARAMS, TRAIN_X[:10], TRAIN_Y[:10])[0], 10)
    assert personal.sums["correct"] == _whole(personalised, TRAIN_X[:10], TRAIN_Y[:10])[0]
    assert personal.sums["loss"] != plain.sums["loss"]


def test_holdout_rows_report_global_and_personal_accuracy_per_client():
    holdout = ClientIndices.from_parts([np.array([0, 1]), np.array([], dtype=np.int64), np.array([5, 6, 7, 8])])
    heads = {2: np.array([1.0], np.float32)}
    owners, slices = holdout_slices(holdout, heads.get)
    assert owners == [0, 2, 2]  # client 1 holds nothing out; client 2 also has its own head
    assert [s.head is not None for s in slices] == [False, False, True]
    counts = [EvalCounts(n, {"correct": c, "loss": 0.0, "count": n}) for c, n in ((1, 2), (1, 4), (3, 4))]
    rows = holdout_rows(owners, slices, counts, 7, Classification())
    assert rows == [
        {"round": 7, "client_id": 0, "samples": 2, "global_accuracy": 0.5, "personal_accuracy": 0.5},
        {"round": 7, "client_id": 2, "samples": 4, "global_accuracy": 0.25, "personal_accuracy": 0.75},
    ]
