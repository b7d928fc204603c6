"""The learning tasks' sums and metrics (models/learning_task.py) against direct computations,
and the run metric's direction (results/metric.py): pure, no Ray."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from raysim.inputs import UserCodeError
from raysim.models.learning_task import NextToken, Regression, build_task, centred
from raysim.results.metric import Metric, read_task
from raysim.sim.kernel.evaluation import EvalCounts, distribution, summarise

RNG = np.random.default_rng(0)


def test_regression_metrics_summed_over_slices_equal_sklearn_on_the_whole():
    predicted, target = RNG.normal(size=50), RNG.normal(size=50) * 2 + 1
    task = Regression()
    slices = [EvalCounts(n, task.sums(torch.tensor(predicted[a:b, None]), torch.tensor(target[a:b])))
              for a, b, n in ((0, 20, 20), (20, 50, 30))]
    scores = summarise(slices, task)
    assert scores["mse"] == pytest.approx(mean_squared_error(target, predicted), rel=1e-12)
    assert scores["mae"] == pytest.approx(mean_absolute_error(target, predicted), rel=1e-12)
    assert scores["r2"] == pytest.approx(r2_score(target, predicted), rel=1e-9)
    assert scores["loss"] == scores["mse"]


def _summed(task: Regression, predicted: np.ndarray, target: np.ndarray, cuts: tuple[int, ...]) -> dict:
    """The task's scores from its sums over the slices between ``cuts``, as workers score them."""
    bounds = list(zip((0, *cuts), (*cuts, len(target))))
    return summarise([EvalCounts(b - a, task.sums(torch.tensor(predicted[a:b]), torch.tensor(target[a:b])))
                      for a, b in bounds], task)


def test_multi_output_r2_is_the_mean_of_the_outputs_r2_as_sklearn_averages_them():
    target = RNG.normal(size=(60, 3)) * [1.0, 3.0, 0.5] + [0.0, 10.0, -40.0]  # outputs of different means
    predicted = target + RNG.normal(size=(60, 3)) * [0.6, 1.0, 0.4]
    for task in (Regression(), centred(Regression(), RNG.normal(size=(100, 3)))):
        scores = _summed(task, predicted, target, (25, 40))
        assert scores["r2"] == pytest.approx(r2_score(target, predicted), rel=1e-12)  # uniform average
        assert scores["mse"] == pytest.approx(mean_squared_error(target, predicted), rel=1e-12)
    assert r2_score(target, predicted) < 0.9 < r2_score(target.ravel(), predicted.ravel())  # not one grand mean


def test_r2_about_the_training_mean_keeps_every_digit_of_targets_on_a_large_offset():
    target = (1e6 + RNG.normal(size=(5000, 2))).astype(np.float32)  # float32 targets, as the workers hold them
    predicted = (target + 0.5 * RNG.normal(size=(5000, 2))).astype(np.float32)
    train = (1e6 + RNG.normal(size=(800, 2))).astype(np.float32)
    expected = r2_score(target.astype(np.float64), predicted.astype(np.float64))
    scores = _summed(centred(Regression(), train), predicted, target, (1000, 2000, 3000, 4000))
    assert abs(scores["r2"] - expected) < 1e-12
    assert abs(_summed(Regression(), predicted, target, (1000, 2000, 3000, 4000))["r2"] - expected) > 1e-8  # uncentred


def test_only_a_regression_is_centred():
    assert centred(Regression(), np.array([[1.0, 3.0], [3.0, 5.0]])).centre == (2.0, 4.0)
    assert centred(Regression(), np.zeros(0)).centre is None
    assert type(centred(NextToken(), np.array([1, 2]))) is NextToken


def test_next_token_perplexity_is_the_exponent_of_the_mean_token_loss_over_every_position():
    draw = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(4, 7, 80, generator=draw), torch.randint(0, 80, (4, 7), generator=draw)
    task = NextToken()
    scores = task.scores(task.sums(logits, targets))
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 80), targets.reshape(-1)).item()
    assert scores["loss"] == pytest.approx(loss, rel=1e-6)
    assert scores["perplexity"] == pytest.approx(math.exp(loss), rel=1e-6)
    assert scores["accuracy"] == (logits.argmax(-1) == targets).sum().item() / targets.numel()  # correct / tokens
    assert task.loss(logits, targets).item() == pytest.approx(loss, rel=1e-6)
    assert task.batched_loss(logits, targets).item() == pytest.approx(loss, rel=1e-6)


def test_a_lower_is_better_metric_reaches_its_target_from_above_and_its_worst_is_the_max():
    mse = Metric("mse", lower_is_better=True)
    assert list(mse.best_so_far(np.array([3.0, 1.0, 2.0]))) == [3.0, 1.0, 1.0] and mse.best([3, 1, 2]) == 1
    assert list(mse.reaches(np.array([3.0, 0.5]), 1.0)) == [False, True]
    spread = distribution([1.0, 4.0, 2.0, 3.0], [1, 1, 1, 1], worst_k=1, lower_is_better=True)
    assert spread["max"] == 4.0 and spread["worst_k"] == 4.0 and "min" not in spread and "p90" in spread


def test_a_user_task_is_checked_at_load():
    task = build_task("tests.user_code:HuberTask", {"tolerance": 1.0})
    assert task.metrics == ("huber", "within") and task.tolerance == 1.0
    with pytest.raises(UserCodeError, match="task.options"):
        build_task("tests.user_code:HuberTask", {"width": 1.0})
    with pytest.raises(UserCodeError, match="task.kind 'tests.user_code:CountingSGD' has no method loss"):
        build_task("tests.user_code:CountingSGD", {})


@pytest.mark.parametrize("content", ['{"kind": "x", "metrics": ["__import__(\'os\')"], "lower_is_better": []}',
                                     '{"kind": "x", "metrics": ["mse"], "lower_is_better": ["r2"]}',
                                     "[" * 10000, "not json", '{"metrics": []}'])
def test_a_foreign_task_file_is_refused_by_name(tmp_path, content):
    (tmp_path / "task.json").write_text(content)
    with pytest.raises(ValueError, match="task.json is not a raysim task file"):
        read_task(tmp_path)


def test_a_run_folder_without_a_task_file_is_a_classification_run(tmp_path):
    assert read_task(tmp_path).primary == Metric("accuracy", lower_is_better=False)
