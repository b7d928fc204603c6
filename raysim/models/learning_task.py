"""What a model is trained and scored for: the learning task (``[task] kind``).

A task gives the loss local training minimises, the sums an evaluation adds up over slices (so
the test set can be scored in parts on any workers, evaluation.py) and the metrics those sums
become, with their direction. The built-ins:

- ``classification``: cross-entropy; accuracy.
- ``regression``: mean squared error, without a 1/2 (learning rates from a derivation of
  1/2-MSE are halved here for the same steps); MSE and MAE over every target value, and R^2 per output
  (1 - SSE / SST, SST about the scored targets' own mean) averaged uniformly over the outputs, as
  sklearn's ``r2_score`` does by default. Its sums are taken about a fixed centre per output (a
  worker's: the mean of the training targets, :func:`centred`), which keeps them additive and
  keeps targets on a large offset from cancelling digits in SST = sum (y - c)^2 - (sum (y - c))^2 / n.
- ``next_token``: cross-entropy per target token (one next character as in LEAF's Shakespeare,
  or a target per position); accuracy over tokens and perplexity, exp(mean loss per token).

A user task is a class named ``"package.module:Name"`` with the same members (``metrics``,
``lower_is_better``, ``labels``, ``loss``, ``sums``, ``scores``): the built-ins are tasks of the
same protocol, so there is one way in. torch is imported inside the methods that compute on
tensors: the driver, which only turns sums into metrics, never loads it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from raysim.inputs import UserCodeError, build_user_object

if TYPE_CHECKING:
    import torch

Labels = Literal["class", "value"]


@runtime_checkable
class LearningTask(Protocol):
    """``metrics``: the names it reports, the primary one first (time-to-target, summaries and
    sweeps use it); ``lower_is_better``: those of them where less is better; ``labels``:
    ``"class"`` (integer targets) or ``"value"`` (real targets)."""

    metrics: tuple[str, ...]
    lower_is_better: frozenset[str]
    labels: Labels

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of a batch, differentiable: what local training minimises."""

    def sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Sums over a batch that add up across batches and slices; ``"loss"`` (the summed loss)
        and ``"count"`` (what the loss is a sum over: examples, or tokens) among them."""

    def scores(self, sums: Mapping[str, float]) -> dict[str, float]:
        """The metrics (each of ``metrics``, and ``"loss"``, the mean loss) from summed ``sums``."""


class Classification:
    """Cross-entropy over classes; accuracy."""

    metrics = ("accuracy",)
    lower_is_better = frozenset()
    labels: Labels = "class"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(outputs, targets)

    def batched_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The same values spelt with log_softmax and gather, for training a batch of models
        under ``vmap`` (models/training.py: the fused loss would import sympy there)."""
        from raysim.models.training import _mean_cross_entropy

        return _mean_cross_entropy(outputs, targets)

    def sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        import torch.nn.functional as F

        return {"correct": int((outputs.argmax(dim=1) == targets).sum()),
                "loss": float(F.cross_entropy(outputs, targets, reduction="sum")), "count": len(targets)}

    def scores(self, sums: Mapping[str, float]) -> dict[str, float]:
        return {"accuracy": _ratio(sums["correct"], sums["count"]), "loss": _ratio(sums["loss"], sums["count"])}


class NextToken(Classification):
    """Cross-entropy per target token, for outputs [B, V] with targets [B] (the next token) or
    [B, T, V] with [B, T] (a target per position); accuracy over tokens and perplexity."""

    metrics = ("accuracy", "perplexity")
    lower_is_better = frozenset({"perplexity"})

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return super().loss(*_tokens(outputs, targets))

    def batched_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return super().batched_loss(*_tokens(outputs, targets))

    def sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return super().sums(*_tokens(outputs, targets))

    def scores(self, sums: Mapping[str, float]) -> dict[str, float]:
        scores = super().scores(sums)
        loss = scores["loss"]
        return {"accuracy": scores["accuracy"], "perplexity": math.exp(loss) if loss < 700 else math.inf,
                "loss": loss}


class Regression:
    """Mean squared error over every target value (outputs [B, 1] or [B, k] for targets [B] or
    [B, k]); MSE, MAE and R^2 averaged over the k outputs. ``centre`` (one value per output, None:
    0) is what the per-output sums are taken about; any fixed centre gives the same R^2, one near
    the targets keeps their digits."""

    metrics = ("mse", "mae", "r2")
    lower_is_better = frozenset({"mse", "mae"})
    labels: Labels = "value"

    def __init__(self, centre: Sequence[float] | None = None):
        self.centre = None if centre is None else tuple(float(c) for c in centre)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs.reshape(targets.shape) - targets).square().mean()

    def sums(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """In float64: the squared and absolute errors over every value; per output j (a column of
        the targets as [rows, k]) its squared error ``sse_j`` and the targets' sums about the
        centre, ``centred_j`` and ``centred_squared_j``; ``rows``."""
        import torch

        error = outputs.reshape(targets.shape).double() - targets.double()
        columns = targets.double().reshape(targets.shape[0], -1)
        errors = error.reshape(columns.shape)
        if self.centre is not None:
            columns = columns - torch.tensor(self.centre, dtype=torch.float64, device=columns.device)
        sums = {"loss": float(error.square().sum()), "absolute": float(error.abs().sum()),
                "count": targets.numel(), "rows": columns.shape[0]}
        for j in range(columns.shape[1]):
            sums |= {f"sse_{j}": float(errors[:, j].square().sum()), f"centred_{j}": float(columns[:, j].sum()),
                     f"centred_squared_{j}": float(columns[:, j].square().sum())}
        return sums

    def scores(self, sums: Mapping[str, float]) -> dict[str, float]:
        count, rows = sums["count"], sums["rows"]
        mse = _ratio(sums["loss"], count)
        outputs = sum(1 for name in sums if name.startswith("sse_"))
        r2 = [_r2(sums[f"sse_{j}"], sums[f"centred_{j}"], sums[f"centred_squared_{j}"], rows) for j in range(outputs)]
        return {"mse": mse, "mae": _ratio(sums["absolute"], count),
                "r2": math.fsum(r2) / outputs if outputs else math.nan, "loss": mse}


def centred(task: LearningTask, train_targets: np.ndarray) -> LearningTask:
    """A built-in regression measured about the mean of the run's training targets (the same
    array on every worker, so every slice's sums share one centre and add up); any other task
    as it is."""
    if type(task) is not Regression or not len(train_targets):
        return task
    columns = np.asarray(train_targets, dtype=np.float64).reshape(len(train_targets), -1)
    return Regression(centre=columns.mean(axis=0))


def _r2(sse: float, centred_sum: float, centred_squares: float, rows: float) -> float:
    """One output's 1 - SSE / SST from its sums about a centre; NaN when its targets do not vary."""
    spread = centred_squares - centred_sum ** 2 / rows if rows else 0.0
    return 1 - sse / spread if spread > 0 else math.nan


def primary(task: Any) -> tuple[str, bool]:
    """The metric that judges a run (the task's first) and whether less of it is better: what
    summaries, time-to-target and the worst-client statistics read (a ``LearningTask`` or the
    record of one in a run folder, results/metric.py)."""
    metric = task.metrics[0]
    return metric, metric in task.lower_is_better


def _tokens(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1)


def _ratio(total: float, count: float) -> float:
    return total / count if count else math.nan


TASK_KINDS: dict[str, type] = {"classification": Classification, "regression": Regression, "next_token": NextToken}


def build_task(kind: str, options: Mapping[str, Any] | None = None) -> LearningTask:
    """The task named by ``[task] kind``: a built-in, or a user's ``"package.module:Name"`` built
    with ``options`` and checked to have the protocol's members (inputs.build_user_object)."""
    if kind in TASK_KINDS:
        return TASK_KINDS[kind]()
    task = build_user_object(kind, options or {}, what="task.kind", choices=sorted(TASK_KINDS),
                             methods=_METHODS, options_key="task.options")
    try:
        check_declared(task)
    except ValueError as exc:
        raise UserCodeError(f"task.kind '{kind}': {exc}") from exc
    return task


_METHODS = {"loss": ("self", "outputs", "targets"), "sums": ("self", "outputs", "targets"), "scores": ("self", "sums")}


def check_declared(task: Any) -> None:
    """A task's declared metrics and labels, checked once so every table's columns mean one thing."""
    metrics = getattr(task, "metrics", None)
    if not isinstance(metrics, tuple) or not metrics or not all(isinstance(m, str) and m.isidentifier()
                                                                 for m in metrics):
        raise ValueError(f"metrics must be a non-empty tuple of names, got {metrics!r}")
    if "loss" in metrics:
        raise ValueError("'loss' is always reported; leave it out of metrics")
    lower = getattr(task, "lower_is_better", frozenset())
    if not set(lower) <= set(metrics):
        raise ValueError(f"lower_is_better names {sorted(set(lower) - set(metrics))}, "
                         f"which are not among metrics {list(metrics)}")
    if getattr(task, "labels", None) not in ("class", "value"):
        raise ValueError(f"labels must be 'class' or 'value', got {getattr(task, 'labels', None)!r}")
