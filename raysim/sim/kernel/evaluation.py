"""Evaluation as sums over slices: what any worker can score and the driver adds up.

The central test set is cut into fixed chunks and spread over the client workers (on their
device, GPU included), and each client's held-out examples are a slice of the training set, so
evaluation runs where the model and the data already are, in parallel, and never on the
driver. Each slice returns sums (correct, summed loss, count); the driver adds them in slice
order, so the result is the same whatever the number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal, Mapping, Sequence

import numpy as np

from raysim.inputs import at_least
from raysim.models.learning_task import primary
from raysim.seeding import Stream, rng

if TYPE_CHECKING:
    from raysim.models.learning_task import LearningTask
    from raysim.sim.kernel.tasks import ClientIndices

HeadOf = Callable[[int], "np.ndarray | None"]  # a client's personal head, None when it has none


@dataclass(frozen=True, kw_only=True)
class EvaluationConfig:
    """``[evaluation]``: what a round reports besides the server test set (``run.eval_every``).

    ``clients`` scores the global model on each client's own held-out examples (``personal.holdout``
    sets their share): ``"all"`` of them, or ``"sampled"``: ``sample`` clients drawn afresh from
    the seed at each client evaluation, every ``every`` rounds and at the last one. With
    ``finetune_steps`` > 0 each scored client also runs that many local SGD steps (its batch size,
    ``finetune_lr``) from the global model, or from its own head, and is scored again: the
    personalised number. The adaptation budget is part of what the number means, so it is named
    here rather than borrowed from [client]. ``worst_k`` (0: ceil(K / 10)) sets how many of the K
    scored clients the round row's worst-k mean averages.
    """

    clients: Literal["none", "all", "sampled"] = "none"
    sample: int = 0
    every: int = 1
    finetune_steps: int = 0
    finetune_lr: float = 0.01
    worst_k: int = 0

    def __post_init__(self) -> None:
        at_least("every", self.every, 1)
        at_least("finetune_steps", self.finetune_steps, 0)
        at_least("worst_k", self.worst_k, 0)
        if (self.clients == "sampled") != (self.sample > 0):
            raise ValueError("set sample > 0 exactly when clients = 'sampled' (how many clients each evaluation scores)")
        if self.finetune_lr <= 0:
            raise ValueError(f"finetune_lr must be > 0, got {self.finetune_lr}")
        if self.clients == "none" and (self.finetune_steps or self.worst_k):
            raise ValueError("finetune_steps and worst_k describe client evaluation: set clients = 'all' or 'sampled'")

    @property
    def active(self) -> bool:
        return self.clients != "none"


@dataclass(frozen=True)
class FineTune:
    """A few local steps before scoring (personalised evaluation): ``steps`` minibatches drawn from
    ``client``'s training examples with a generator keyed by (seed, round, client)."""

    client: int
    steps: int
    lr: float
    round: int


@dataclass(frozen=True)
class EvalSlice:
    """Examples to score the model on: rows of the test set, or of the training set (a client's
    held-out examples), optionally with a client's personal head in place of the global one and
    fine-tuned on the client's training examples first."""

    split: Literal["test", "train"]
    indices: np.ndarray
    head: np.ndarray | None = None
    finetune: FineTune | None = None


@dataclass(frozen=True)
class EvalCounts:
    """One slice's ``count`` of examples and the learning task's ``sums`` over them
    (models/learning_task.py; classification: the number correct, the summed loss), so slices
    scored on different workers add up exactly."""

    count: int
    sums: Mapping[str, float]


EVAL_CHUNK = 1000  # test rows per slice: fixed, so the floats do not depend on the number of workers


def central_slices(test_size: int) -> list[EvalSlice]:
    """The test set in fixed chunks, to be spread over the workers."""
    return [EvalSlice("test", np.arange(start, min(start + EVAL_CHUNK, test_size)))
            for start in range(0, test_size, EVAL_CHUNK)]


def summarise(counts: Sequence[EvalCounts], task: LearningTask) -> dict[str, float]:
    """The task's metrics and mean ``"loss"`` over slices, from their sums added in slice order
    (exactly: ``math.fsum``); NaN for no examples."""
    if not sum(c.count for c in counts):
        return {name: math.nan for name in (*task.metrics, "loss")}
    names = dict.fromkeys(name for c in counts for name in c.sums)
    return dict(task.scores({name: math.fsum(c.sums.get(name, 0) for c in counts) for name in names}))


def holdout_slices(holdout: ClientIndices, head_of: HeadOf, *, clients: Sequence[int] | None = None,
                   finetune: EvaluationConfig | None = None, round_number: int = 0) -> tuple[list[int], list[EvalSlice]]:
    """What to score for the per-client evaluation: each client's held-out examples under the
    global model, then under its personalised model (its own head, fine-tuned with
    ``finetune.finetune_steps`` when given) when it has one. ``clients`` limits it to those.

    Returns the client of each slice alongside the slices, in the order ``holdout_rows`` reads them.
    """
    owners, slices = [], []
    sizes = holdout.sizes()
    steps = finetune.finetune_steps if finetune is not None else 0
    for client in range(len(sizes)) if clients is None else clients:
        if not sizes[client]:
            continue
        idx = holdout.of(client)
        owners.append(client)
        slices.append(EvalSlice("train", idx))
        head = head_of(client)
        if head is not None or steps:
            owners.append(client)
            tune = FineTune(client, steps, finetune.finetune_lr, round_number) if steps else None
            slices.append(EvalSlice("train", idx, head=head, finetune=tune))
    return owners, slices


def evaluated_clients(config: EvaluationConfig, holdout: ClientIndices, *, seed: int, round_number: int) -> list[int]:
    """The clients a client evaluation scores: all with held-out examples, or ``sample`` of them
    drawn from (seed, round), so the subset does not depend on the workers."""
    candidates = np.flatnonzero(holdout.sizes())
    if config.clients == "all":
        return [int(c) for c in candidates]
    chosen = rng(seed, Stream.EVALUATION, round_number).choice(candidates, min(config.sample, len(candidates)),
                                                               replace=False)
    return sorted(int(c) for c in chosen)


def test_columns(scores: Mapping[str, float]) -> dict[str, float]:
    """A central evaluation's round-row columns: ``test_<metric>`` for each of the task's
    metrics, then ``test_loss`` (``summarise([], task)`` gives the NaNs of an unscored round)."""
    return {f"test_{name}": value for name, value in scores.items()}


def utility(scores: Mapping[str, float], task: LearningTask) -> float:
    """The task's primary metric, negated where lower is better, so that more is always better
    (the ledger committee's score of a candidate model)."""
    metric, lower_is_better = primary(task)
    return -scores[metric] if lower_is_better else scores[metric]


def distribution(values: Sequence[float], samples: Sequence[int], *, worst_k: int = 0,
                 lower_is_better: bool = False) -> dict[str, float]:
    """The spread of a per-client metric for a round row: unweighted mean; weighted mean (for
    accuracy or MSE the pooled value: for one model it equals the metric on the union of the
    client test sets); std over clients (ddof 0: these K clients are the population described,
    not a sample); then from the worst side: the 10th percentile of accuracy (linear
    interpolation) and its min, or, where lower is better, the 90th percentile and the max; the
    mean of the ``worst_k`` worst (0: ceil(K / 10))."""
    a = np.sort(np.asarray(values, dtype=float))
    worst_first = a[::-1] if lower_is_better else a
    n = np.asarray(samples, dtype=float)
    k = worst_k or math.ceil(len(a) / 10)
    edge = {"p90": float(np.percentile(a, 90)), "max": float(a[-1])} if lower_is_better else \
        {"p10": float(np.percentile(a, 10)), "min": float(a[0])}
    return {"mean": float(a.mean()), "weighted": float(np.dot(values, n) / n.sum()), "std": float(a.std()),
            **edge, "worst_k": float(worst_first[:k].mean())}


def holdout_rows(owners: list[int], slices: list[EvalSlice], counts: list[EvalCounts], round_number: int,
                 task: LearningTask) -> list[dict]:
    """One row per client: the task's metrics (``global_<metric>``, ``personal_<metric>``) of the
    global and of its personalised model (the global one again when it has no head yet) on its
    held-out examples."""
    rows: dict[int, dict] = {}
    for client, part, scored in zip(owners, slices, counts):
        row = rows.setdefault(client, {"round": round_number, "client_id": client, "samples": scored.count})
        personalised = part.head is not None or part.finetune is not None
        scores = task.scores(scored.sums)
        row.update({f"{'personal' if personalised else 'global'}_{name}": scores[name] for name in task.metrics})
    for row in rows.values():
        for name in task.metrics:
            row.setdefault(f"personal_{name}", row[f"global_{name}"])
    return list(rows.values())


def evaluate_clients(config: EvaluationConfig, holdout: ClientIndices, head_of: HeadOf,
                     score: Callable[[np.ndarray, list[EvalSlice]], list[EvalCounts]], params: np.ndarray, *,
                     seed: int, round_number: int, task: LearningTask) -> tuple[list[dict], dict[str, float]]:
    """One client evaluation: the per-client rows (evaluation.parquet) and the round row's
    distribution columns of the task's primary metric, e.g.
    ``client_{global,personal}_accuracy_{mean,weighted,std,p10,min,worst_k}`` (``distribution``),
    and ``client_eval_clients`` (how many were scored). ``score`` is the executor's evaluate, so
    the workers score the slices."""
    clients = evaluated_clients(config, holdout, seed=seed, round_number=round_number)
    owners, slices = holdout_slices(holdout, head_of, clients=clients, finetune=config, round_number=round_number)
    rows = holdout_rows(owners, slices, score(params, slices), round_number, task)
    spread: dict[str, float] = {"client_eval_clients": len(rows)}
    held = [r["samples"] for r in rows]
    metric, lower_is_better = primary(task)
    for kind in ("global", "personal"):
        stats = distribution([r[f"{kind}_{metric}"] for r in rows], held, worst_k=config.worst_k,
                             lower_is_better=lower_is_better)
        spread.update({f"client_{kind}_{metric}_{name}": value for name, value in stats.items()})
    return rows, spread
