"""FedNova: normalised averaging of client updates with unequal local work.

Wang, Liu, Liang, Joshi, Poor, "Tackling the Objective Inconsistency Problem in
Heterogeneous Federated Optimization", NeurIPS 2020, arXiv:2007.07481.

When clients run different numbers of local steps (or different local
optimisers), FedAvg implicitly weights each client by how far it travelled, so
it converges to a stationary point of a *different* objective than the
sample-weighted one. FedNova divides each client's delta by the L1 norm of its
local "step-weight vector" ``a_i`` (how much of the client's gradients ended up
in the delta) before averaging, then rescales by the effective step count
``tau_eff = sum_i p_i ||a_i||_1`` so the server makes comparable progress.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fednova_aggregate", "local_step_norm"]


def local_step_norm(
    *,
    steps: int,
    momentum: float = 0.0,
    proximal_mu: float = 0.0,
    lr: float | None = None,
) -> float:
    """L1 norm ``||a_i||_1`` of a client's local step-weight vector (Wang et al., Sec. 4).

    Args:
        steps: Local SGD steps ``tau >= 1`` the client took this round.
        momentum: Local heavy-ball momentum ``rho`` in [0, 1). Momentum makes
            early gradients count several times, so the norm exceeds ``tau``:
            ``[tau - rho (1 - rho^tau) / (1 - rho)] / (1 - rho)``.
        proximal_mu: FedProx coefficient ``mu >= 0``. The proximal pull toward
            the global model shrinks earlier gradients, so the norm is below
            ``tau``: ``[1 - (1 - lr mu)^tau] / (lr mu)``.
        lr: Local learning rate ``> 0``; needed only when ``proximal_mu > 0``,
            with ``lr * proximal_mu < 1``.

    Returns:
        The norm; ``steps`` for plain local SGD.

    Raises:
        ValueError: If a setting is out of range, or both ``momentum`` and
            ``proximal_mu`` are non-zero (the paper gives no closed form for
            the combination).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if not proximal_mu >= 0.0:
        raise ValueError(f"proximal_mu must be >= 0, got {proximal_mu!r}")
    if momentum > 0.0 and proximal_mu > 0.0:
        raise ValueError("momentum and proximal_mu cannot both be > 0; set one of them to 0")
    if momentum > 0.0:
        geometric = (1.0 - momentum**steps) / (1.0 - momentum)
        return float((steps - momentum * geometric) / (1.0 - momentum))
    if proximal_mu > 0.0:
        if lr is None or not lr > 0.0:
            raise ValueError(f"lr must be > 0 when proximal_mu > 0, got {lr!r}")
        shrink = lr * proximal_mu
        if not shrink < 1.0:
            raise ValueError(f"lr * proximal_mu must be in (0, 1), got {shrink!r}")
        # 1 - (1 - x)^tau via expm1/log1p stays accurate as x -> 0 (norm -> tau).
        return float(-np.expm1(steps * np.log1p(-shrink)) / shrink)
    return float(steps)


def fednova_aggregate(deltas: np.ndarray, weights: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Normalised average of client deltas: ``D = tau_eff * sum_i p_i d_i / ||a_i||_1``.

    Returning the delta rather than new params lets the result feed a server
    optimiser (``raysim.algorithms.server_opt``); plain FedNova is ``x + D``.

    Args:
        deltas: Client deltas ``d_i = x_i - x``, shape ``[K, P]``.
        weights: Non-negative client weights (usually sample counts), shape
            ``[K]``, with a positive sum; normalised to ``p_i`` here.
        norms: Positive step-weight norms ``||a_i||_1`` from
            :func:`local_step_norm`, shape ``[K]``.

    Returns:
        The aggregated delta, float64, shape ``[P]``. With equal norms it equals
        the FedAvg delta ``sum_i p_i d_i``.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    norms = np.asarray(norms, dtype=np.float64)
    if deltas.ndim != 2:
        raise ValueError(f"deltas must be a 2-D [K, P] array, got shape {deltas.shape}")
    num_clients = deltas.shape[0]
    if weights.shape != (num_clients,) or norms.shape != (num_clients,):
        raise ValueError(
            f"weights and norms must have shape ({num_clients},), "
            f"got {weights.shape} and {norms.shape}"
        )
    if not (np.all(weights >= 0.0) and weights.sum() > 0.0):
        raise ValueError("weights must be >= 0 with a sum > 0")
    if not np.all(norms > 0.0):
        raise ValueError("norms must be > 0")
    p = weights / weights.sum()
    tau_eff = p @ norms
    return (p * (tau_eff / norms)) @ deltas
