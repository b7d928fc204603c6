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
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

if TYPE_CHECKING:
    from raysim.algorithms.personal import PersonalLayers
    from raysim.sim.tasks import Shards


@dataclass(frozen=True)
class EvalSlice:
    """Examples to score the model on: rows of the test set, or of the training set (a client's
    held-out examples), optionally with a client's personal head in place of the global one."""

    split: Literal["test", "train"]
    indices: np.ndarray
    head: np.ndarray | None = None


@dataclass(frozen=True)
class EvalCounts:
    """Sums over one slice, so slices scored on different workers add up exactly."""

    correct: int
    loss_sum: float
    count: int


EVAL_CHUNK = 1000  # test rows per slice: fixed, so the floats do not depend on the number of workers


def central_slices(test_size: int) -> list[EvalSlice]:
    """The test set in fixed chunks, to be spread over the workers."""
    return [EvalSlice("test", np.arange(start, min(start + EVAL_CHUNK, test_size)))
            for start in range(0, test_size, EVAL_CHUNK)]


def summarise(counts: Sequence[EvalCounts]) -> tuple[float, float]:
    """(accuracy, mean loss) over slices; NaN for no examples."""
    total = sum(c.count for c in counts)
    if not total:
        return float("nan"), float("nan")
    return sum(c.correct for c in counts) / total, math.fsum(c.loss_sum for c in counts) / total


def holdout_slices(holdout: Shards, personal: PersonalLayers | None) -> tuple[list[int], list[EvalSlice]]:
    """What to score for the per-client evaluation: each client's held-out examples under the
    global model, then under its personalised model (its own head) when it has one.

    Returns the client of each slice alongside the slices, in the order ``holdout_rows`` reads them.
    """
    owners, slices = [], []
    for client, size in enumerate(holdout.sizes()):
        if not size:
            continue
        idx = holdout.of(client)
        owners.append(client)
        slices.append(EvalSlice("train", idx))
        if personal is not None and client in personal.heads:
            owners.append(client)
            slices.append(EvalSlice("train", idx, head=personal.heads[client]))
    return owners, slices


def holdout_rows(owners: list[int], slices: list[EvalSlice], counts: list[EvalCounts], round_number: int) -> list[dict]:
    """One row per client: accuracy of the global and of its personalised model (the global one
    again when it has no head yet) on its held-out examples."""
    rows: dict[int, dict] = {}
    for client, part, scored in zip(owners, slices, counts):
        row = rows.setdefault(client, {"round": round_number, "client_id": client, "samples": scored.count})
        row["personal_accuracy" if part.head is not None else "global_accuracy"] = scored.correct / scored.count
    for row in rows.values():
        row.setdefault("personal_accuracy", row["global_accuracy"])
    return list(rows.values())
