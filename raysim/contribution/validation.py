"""The server's validation set: a share of the clients' training examples, taken out of their
shards before training, so no client trains on it and it stays apart from the test set (on
which the run reports accuracy)."""

from __future__ import annotations

import numpy as np


def split_validation(parts: list[np.ndarray], share: float,
                     draw: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """(the clients' shards without the validation rows, the validation rows sorted): ``share`` of
    all the clients' rows, drawn uniformly, so each client gives about its share of its data."""
    pooled = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    count = min(max(round(share * len(pooled)), 1), len(pooled))
    validation = np.sort(draw.choice(pooled, size=count, replace=False))
    return [np.setdiff1d(p, validation, assume_unique=True) for p in parts], validation
