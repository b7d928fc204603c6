"""Averaging client deltas: FedAvg's weighted mean and unweighted averaging.

FedAvg (McMahan et al. 2017, arXiv:1602.05629) weights client k by n_k / m_t, where m_t sums
the sample counts of the clients *selected and aggregated* this round, not of the population.
The sum is accumulated in float64 in a fixed order (by client id), so the result does not
depend on which worker trained which client or in which order Ray returned them.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

Weighting = Literal["samples", "uniform"]


def client_weights(num_samples: Sequence[int], weighting: Weighting) -> np.ndarray:
    """Unnormalised weights: n_k for ``samples``, 1 for ``uniform``."""
    counts = np.asarray(num_samples, dtype=np.float64)
    if weighting == "samples":
        return counts
    if weighting == "uniform":
        return np.ones_like(counts)
    raise ValueError(f"weighting must be 'samples' or 'uniform', got {weighting!r}")


def weighted_mean(deltas: Sequence[np.ndarray], weights: Sequence[float], scales: Sequence[float] | None = None) -> np.ndarray:
    """sum_k w_k s_k d_k / sum_k w_k, in float64.

    ``scales`` (default 1) multiply each term without entering the denominator: a staleness
    discount shrinks a late update's contribution rather than re-distributing it to the others,
    as FedBuff and FedAsync prescribe.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if len(deltas) != len(weights):
        raise ValueError(f"{len(deltas)} deltas but {len(weights)} weights")
    if len(deltas) == 0:
        raise ValueError("cannot average zero updates")
    total = weights.sum()
    if total <= 0:
        raise ValueError(f"weights must sum to a positive number, got {total}")
    scales = np.ones_like(weights) if scales is None else np.asarray(scales, dtype=np.float64)
    out = np.zeros(np.shape(deltas[0]), dtype=np.float64)
    for delta, w, s in zip(deltas, weights, scales):
        out += (w * s / total) * np.asarray(delta, dtype=np.float64)
    return out
