"""[evaluation]: client-local test sets scored by the workers, their distribution on the round row."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from raysim.algorithms.sgd import SGDConfig
from raysim.api import run
from raysim.inputs import ConfigError
from raysim.models.spec import ModelSpec
from raysim.runtime.worker import ClientWorker
from raysim.scenario.preparation import initial_model, prepare
from raysim.models.learning_task import Classification
from raysim.sim.kernel.evaluation import EvalSlice, EvaluationConfig, distribution, evaluate_clients, summarise
from raysim.sim.kernel.tasks import ClientIndices, TrainingPlan

RNG = np.random.default_rng(1)
X = RNG.normal(size=(200, 4)).astype(np.float32)
Y = RNG.integers(0, 3, size=200)
PARAMS = RNG.normal(size=15).astype(np.float32)


def _worker(train: ClientIndices) -> ClientWorker:
    plan = TrainingPlan(batch_size=5, sgd=SGDConfig(lr=0.1), seed=0)
    return ClientWorker(model=ModelSpec("logreg", (4,), 3), plan=plan, train_x=X, train_y=Y, shards=train)


def test_pooled_client_accuracy_of_one_model_is_its_accuracy_on_the_union_of_client_test_sets():
    """sum_k n_k acc_k / sum_k n_k == accuracy on the union (KarhouTam/FL-bench#21), exactly."""
    cuts = np.sort(RNG.choice(np.arange(1, 200), 9, replace=False))
    held = ClientIndices.from_parts(np.split(RNG.permutation(200), cuts))  # 10 clients of unequal sizes
    worker = _worker(held)
    config = EvaluationConfig(clients="all")
    rows, spread = evaluate_clients(config, held, lambda client: None, worker.evaluate, PARAMS, seed=0, round_number=1,
                                    task=Classification())
    (union,) = worker.evaluate(PARAMS, [EvalSlice("train", held.indices)])
    assert len(rows) == 10 and sum(r["samples"] for r in rows) == 200
    assert math.isclose(spread["client_global_accuracy_weighted"], summarise([union], Classification())["accuracy"], rel_tol=1e-12)
    unweighted = np.mean([r["global_accuracy"] for r in rows])
    assert math.isclose(spread["client_global_accuracy_mean"], unweighted)


def test_the_distribution_of_client_accuracies():
    stats = distribution([0.9, 0.1, 0.5, 0.7], [1, 1, 2, 4], worst_k=2)
    assert stats["mean"] == pytest.approx(0.55)
    assert stats["weighted"] == pytest.approx((0.9 + 0.1 + 1.0 + 2.8) / 8)
    assert stats["std"] == pytest.approx(np.std([0.9, 0.1, 0.5, 0.7]))  # ddof 0: the K clients themselves
    assert stats["min"] == 0.1 and stats["worst_k"] == pytest.approx(0.3)
    assert stats["p10"] == pytest.approx(np.percentile([0.1, 0.5, 0.7, 0.9], 10))
    assert distribution([0.2] * 25, [1] * 25)["worst_k"] == pytest.approx(0.2)  # k = ceil(25 / 10) = 3


def test_a_sampled_evaluation_scores_a_seeded_subset_and_fine_tuning_personalises(tiny, tmp_path):
    scenario = tiny(personal={"holdout": 0.3},
                    evaluation={"clients": "sampled", "sample": 3, "every": 2, "finetune_steps": 3, "finetune_lr": 0.1})
    outcome = run(scenario, results_root=tmp_path)
    evaluation = pd.read_parquet(outcome.run_dir / "evaluation.parquet")
    rounds = pd.read_parquet(outcome.run_dir / "rounds.parquet")
    assert sorted(evaluation["round"].unique()) == [2, 4]  # every 2 rounds (and the last)
    assert evaluation.groupby("round").size().tolist() == [3, 3]
    assert (evaluation.personal_accuracy != evaluation.global_accuracy).any()
    scored = rounds.set_index("round").loc[[2, 4]]
    assert (scored.client_eval_clients == 3).all()
    for kind in ("global", "personal"):
        weighted = evaluation.groupby("round").apply(
            lambda g, k=kind: (g[f"{k}_accuracy"] * g.samples).sum() / g.samples.sum())
        assert np.allclose(scored[f"client_{kind}_accuracy_weighted"], weighted)
    assert rounds.set_index("round").loc[[1, 3], "client_eval_clients"].isna().all()
    again = run(scenario, results_root=tmp_path / "again")
    pd.testing.assert_frame_equal(evaluation, pd.read_parquet(again.run_dir / "evaluation.parquet"))


def test_without_an_evaluation_block_a_run_records_what_it_did_before(tiny, tmp_path):
    outcome = run(tiny(personal={"holdout": 0.3}), results_root=tmp_path)
    rounds = pd.read_parquet(outcome.run_dir / "rounds.parquet")
    assert not [c for c in rounds.columns if c.startswith("client_")]
    assert "holdout_global_accuracy" in rounds.columns


def test_the_data_seed_keeps_the_partition_while_the_training_seed_changes(tiny):
    scenarios = [tiny(run={"seed": s}, data={"seed": 7}, personal={"holdout": 0.2}) for s in (1, 2)]
    one, two = (prepare(scenario) for scenario in scenarios)
    assert np.array_equal(one.shards.indices, two.shards.indices) and np.array_equal(one.holdout.indices,
                                                                                      two.holdout.indices)
    assert not np.array_equal(*(initial_model(scenario, one.model).params for scenario in scenarios))
    default = prepare(tiny(run={"seed": 7}))
    assert np.array_equal(default.shards.indices, prepare(tiny(run={"seed": 7}, data={"seed": 7})).shards.indices)


@pytest.mark.parametrize("evaluation, personal, message", [
    ({"clients": "all"}, {}, "set personal.holdout > 0"),
    ({"clients": "sampled"}, {"holdout": 0.2}, "set sample > 0"),
    ({"clients": "sampled", "sample": 99}, {"holdout": 0.2}, "more than data.num_clients"),
    ({"finetune_steps": 2}, {}, "set clients = 'all' or 'sampled'"),
])
def test_bad_evaluation_blocks_are_refused_at_load(tiny, evaluation, personal, message):
    with pytest.raises(ConfigError, match=message):
        tiny(evaluation=evaluation, personal=personal)
