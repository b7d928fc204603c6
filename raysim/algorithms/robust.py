"""Byzantine-robust aggregation of stacked client updates.

The weighted mean lets a single client move the global model arbitrarily far.
The rules here bound the influence of up to ``f`` arbitrary (Byzantine) rows of
the update matrix ``U`` of shape ``[K, P]`` (one client delta per row):

* Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning:
  Towards Optimal Statistical Rates", ICML 2018, arXiv:1803.01498
  (coordinate-wise median and trimmed mean).
* Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries:
  Byzantine Tolerant Gradient Descent", NeurIPS 2017 (Krum and Multi-Krum).

Robust rules are unweighted: a per-client weight (e.g. sample count) is
reported by the client itself, so an attacker could claim a huge weight and
undo the robustness. ``ROBUST_AGGREGATORS`` therefore accepts ``weights`` only
to share the weighted mean's call signature, and ignores it. A policy's per-update
scale (a staleness discount, FedAsync's rate) is not a claim by the client: the
strategy applies the rules to the scaled rows ``s_i d_i``.

Guarantees. Krum and Multi-Krum are (alpha, f)-Byzantine resilient when
``K > 2 f + 2`` (Blanchard et al., Prop. 1); they are *defined* for ``K > f + 2``
and run there, without the guarantee. Multi-Krum's ``m`` defaults to 1
(``server.num_selected``), which is Krum itself; Blanchard et al. suggest
``m = K - f``.
"""

from __future__ import annotations

from functools import wraps
from typing import Any, Callable

import numpy as np

__all__ = [
    "ROBUST_AGGREGATORS",
    "minimum_rows",
    "coordinate_median",
    "krum",
    "krum_scores",
    "multi_krum",
    "trimmed_mean",
]


def _as_updates(updates: np.ndarray) -> np.ndarray:
    """Return ``updates`` as a float64 ``[K, P]`` array with ``K >= 1``."""
    updates = np.asarray(updates, dtype=np.float64)
    if updates.ndim != 2 or updates.shape[0] < 1:
        raise ValueError(
            f"updates must be a 2-D [K, P] array with K >= 1, got shape {updates.shape}"
        )
    return updates


def coordinate_median(updates: np.ndarray) -> np.ndarray:
    """Per-coordinate median of the client updates (Yin et al. 2018).

    Args:
        updates: Client deltas, shape ``[K, P]``.

    Returns:
        The median over clients, shape ``[P]``; for even ``K`` the mean of the
        two middle values.
    """
    return np.median(_as_updates(updates), axis=0)


def trimmed_mean(updates: np.ndarray, trim: int) -> np.ndarray:
    """Per-coordinate mean after dropping the ``trim`` largest and smallest values.

    Args:
        updates: Client deltas, shape ``[K, P]``.
        trim: Values dropped at each end per coordinate; tolerates up to
            ``trim`` Byzantine clients. Must satisfy ``0 <= 2 * trim < K``.

    Returns:
        The trimmed mean, shape ``[P]``.
    """
    updates = _as_updates(updates)
    num_clients = updates.shape[0]
    if not 0 <= trim or 2 * trim >= num_clients:
        raise ValueError(
            f"trim must satisfy 0 <= trim and 2 * trim < K = {num_clients}, got {trim!r}"
        )
    ordered = np.sort(updates, axis=0)
    return ordered[trim : num_clients - trim].mean(axis=0)


def krum_scores(updates: np.ndarray, num_byzantine: int) -> np.ndarray:
    """Krum score of each row: summed squared distance to its ``K - f - 2`` nearest rows.

    An honest row sits in a dense cluster of other honest rows, so its nearest
    neighbours are close; a Byzantine row far from the cluster has a large score.

    Args:
        updates: Client deltas, shape ``[K, P]``.
        num_byzantine: Assumed number of Byzantine clients ``f >= 0``;
            requires ``K > f + 2``.

    Returns:
        Scores, shape ``[K]`` (lower is more trustworthy).
    """
    updates = _as_updates(updates)
    num_clients = updates.shape[0]
    if num_byzantine < 0:
        raise ValueError(f"num_byzantine must be >= 0, got {num_byzantine!r}")
    neighbours = num_clients - num_byzantine - 2
    if neighbours < 1:
        raise ValueError(
            f"Krum requires K > num_byzantine + 2, got K = {num_clients}, "
            f"num_byzantine = {num_byzantine}"
        )
    scores = np.empty(num_clients, dtype=np.float64)
    for i, row in enumerate(updates):
        # Row by row keeps memory at O(K * P) and avoids the cancellation of
        # the |a|^2 + |b|^2 - 2ab expansion when updates are nearly equal.
        distances = np.sum((updates - row) ** 2, axis=1)
        distances[i] = np.inf
        scores[i] = np.sort(distances)[:neighbours].sum()
    return scores


def krum(updates: np.ndarray, num_byzantine: int) -> np.ndarray:
    """Krum: the single update with the lowest score (ties: lowest client index).

    Args:
        updates: Client deltas, shape ``[K, P]``.
        num_byzantine: Assumed number of Byzantine clients; requires ``K > f + 2``.

    Returns:
        A copy of the selected row, shape ``[P]``.
    """
    updates = _as_updates(updates)
    return updates[np.argmin(krum_scores(updates, num_byzantine))].copy()


def multi_krum(updates: np.ndarray, num_byzantine: int, num_selected: int) -> np.ndarray:
    """Multi-Krum: mean of the ``m`` lowest-score updates.

    Averaging several trusted rows recovers most of the variance reduction of
    the plain mean that single Krum gives up.

    Args:
        updates: Client deltas, shape ``[K, P]``.
        num_byzantine: Assumed number of Byzantine clients; requires ``K > f + 2``.
        num_selected: Number of rows ``m`` averaged, in ``[1, K]``; ties in
            score are broken towards the lower client index.

    Returns:
        The mean of the selected rows, shape ``[P]``.
    """
    updates = _as_updates(updates)
    num_clients = updates.shape[0]
    if not 1 <= num_selected <= num_clients:
        raise ValueError(f"num_selected must be in [1, K = {num_clients}], got {num_selected!r}")
    order = np.argsort(krum_scores(updates, num_byzantine), kind="stable")
    return updates[order[:num_selected]].mean(axis=0)


def minimum_rows(rule: str, *, trim: int = 0, num_byzantine: int = 0, num_selected: int = 1) -> int:
    """The fewest rows for which ``rule`` is defined (the median: one; Krum: ``f + 3``); Multi-Krum
    also keeps its ``m`` rows out of the ``f`` it expects to be Byzantine, so it needs ``m + f``."""
    return {
        "median": 1,
        "trimmed_mean": 2 * trim + 1,
        "krum": num_byzantine + 3,
        "multi_krum": max(num_byzantine + 3, num_selected + num_byzantine),
    }[rule]


def _ignoring_weights(rule: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Adapt ``rule(U, **params)`` to the uniform ``(U, weights, **params)`` signature."""

    @wraps(rule)
    def aggregate(updates: np.ndarray, weights: Any, **params: Any) -> np.ndarray:
        return rule(updates, **params)

    return aggregate


ROBUST_AGGREGATORS: dict[str, Callable[..., np.ndarray]] = {
    "median": _ignoring_weights(coordinate_median),
    "trimmed_mean": _ignoring_weights(trimmed_mean),
    "krum": _ignoring_weights(krum),
    "multi_krum": _ignoring_weights(multi_krum),
}
