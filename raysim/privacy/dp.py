"""Client-level differential privacy for federated averaging (DP-FedAvg).

Sources: H. B. McMahan, D. Ramage, K. Talwar, L. Zhang, "Learning Differentially
Private Recurrent Language Models", ICLR 2018 (arXiv:1710.06963), for clipping
each client's update to L2 norm ``S`` and adding Gaussian noise of std
``z * S`` to the sum, divided by a *fixed* denominator (the expected cohort
size ``qW``) so that the average's sensitivity does not depend on who showed up;
G. Andrew, O. Thakkar, H. B. McMahan, S. Ramaswamy, "Differentially Private
Learning with Adaptive Clipping", NeurIPS 2021 (arXiv:1905.03871), for
adapting ``S`` towards a target quantile of the update norms.

Noise can be placed centrally (the server, or secure aggregation, noises the
sum once: :func:`dp_average`) or locally (every client noises its own clipped
update: :func:`local_noise`). Local placement trusts nobody but costs
``sqrt(cohort)`` times more noise on the average for the same per-release
epsilon, and is accounted per client (see :mod:`raysim.privacy.accounting`).

All randomness comes from an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def clip_to_norm(delta: np.ndarray, clip_norm: float) -> tuple[np.ndarray, bool, float]:
    """Scale ``delta`` down to L2 norm ``clip_norm`` if it is longer.

    Clipping bounds every client's contribution, which is what gives the sum an
    L2 sensitivity of ``clip_norm`` under adding or removing one client.

    Args:
        delta: Flat model update.
        clip_norm: Maximum L2 norm ``S`` (> 0).

    Returns:
        ``(clipped, was_clipped, norm)`` where ``norm`` is the norm *before*
        clipping (adaptive clipping needs it) and ``clipped`` is a new array.
    """
    _check_positive("clip_norm", clip_norm)
    delta = np.asarray(delta, dtype=np.float64)
    norm = float(np.linalg.norm(delta))
    if norm > clip_norm:
        return delta * (clip_norm / norm), True, norm
    return delta.copy(), False, norm


def gaussian_noise_std(noise_multiplier: float, clip_norm: float, denominator: float = 1.0) -> float:
    """Standard deviation of the noise on the DP average: ``z * S / denominator``.

    Args:
        noise_multiplier: ``z``, noise std in units of the sensitivity (>= 0).
        clip_norm: ``S`` (> 0).
        denominator: Fixed divisor of the noisy sum, usually the expected cohort
            size ``qW`` (> 0); 1 gives the std on the sum.
    """
    _check_non_negative("noise_multiplier", noise_multiplier)
    _check_positive("clip_norm", clip_norm)
    _check_positive("denominator", denominator)
    return noise_multiplier * clip_norm / denominator


def dp_average(
    clipped_sum: np.ndarray,
    *,
    clip_norm: float,
    noise_multiplier: float,
    denominator: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Central placement: ``(sum + N(0, (z S)^2 I)) / denominator``.

    The denominator is fixed in advance (not the number of clients that
    reported), as in DP-FedAvg's fixed-denominator estimator: dividing by the
    realised count would make the sensitivity depend on the data.

    Args:
        clipped_sum: Sum of the cohort's clipped updates.
        clip_norm: ``S`` used for clipping.
        noise_multiplier: ``z``.
        denominator: Expected cohort size ``qW``.
        rng: Source of the noise.

    Returns:
        The noisy average (a new array).
    """
    clipped_sum = np.asarray(clipped_sum, dtype=np.float64)
    std_on_sum = gaussian_noise_std(noise_multiplier, clip_norm)
    _check_positive("denominator", denominator)
    return (clipped_sum + rng.normal(0.0, std_on_sum, size=clipped_sum.shape)) / denominator


def local_noise(
    clipped: np.ndarray, *, clip_norm: float, noise_multiplier: float, rng: np.random.Generator
) -> np.ndarray:
    """Local placement: one client adds ``N(0, (z S)^2 I)`` to its clipped update.

    Each client's noisy update is itself a Gaussian-mechanism release of that
    client's data, so the guarantee holds even against the server, and it is
    accounted per client as a plain (unsampled) Gaussian mechanism composed over
    the client's own participations; server-side client sampling gives no
    amplification. The average of ``m`` locally noised updates carries noise of
    std ``z S / sqrt(m)``, versus ``z S / m`` for central placement.

    Args:
        clipped: The client's update, already clipped to ``clip_norm``.
        clip_norm: ``S``.
        noise_multiplier: ``z``.
        rng: Source of the noise (the client's own generator).

    Returns:
        The noisy update (a new array).
    """
    clipped = np.asarray(clipped, dtype=np.float64)
    std = gaussian_noise_std(noise_multiplier, clip_norm)
    return clipped + rng.normal(0.0, std, size=clipped.shape)


@dataclass(frozen=True)
class AdaptiveClipState:
    """Clip norm tracked by adaptive clipping (Andrew et al. 2021).

    Attributes:
        clip_norm: Current clip norm ``C`` (paper's initial value 0.1).
        target_quantile: ``gamma``: the fraction of clients meant to be unclipped.
        learning_rate: ``eta_C`` of the geometric update.
    """

    clip_norm: float = 0.1
    target_quantile: float = 0.5
    learning_rate: float = 0.2

    def __post_init__(self) -> None:
        _check_positive("clip_norm", self.clip_norm)
        if not 0.0 <= self.target_quantile <= 1.0:
            raise ValueError(f"target_quantile must be in [0, 1], got {self.target_quantile!r}")
        _check_positive("learning_rate", self.learning_rate)


def noisy_unclipped_fraction(
    norms: np.ndarray,
    clip_norm: float,
    expected_clients: float,
    rng: np.random.Generator,
    count_std: float | None = None,
) -> float:
    """Privatised fraction of clients whose update norm is ``<= clip_norm``.

    Computes ``(sum_i 1[norm_i <= C] + N(0, sigma_b^2)) / expected_clients``.
    Dividing by the expected (not realised) cohort size keeps the estimate's
    sensitivity fixed, as for the model update.

    Args:
        norms: Unclipped L2 norms of the cohort's updates.
        clip_norm: Current clip norm ``C``.
        expected_clients: Expected cohort size ``qW`` (> 0).
        rng: Source of the noise.
        count_std: ``sigma_b``; default ``expected_clients / 20``, the paper's
            recommendation. 0 disables the noise (for tests; not private).

    Returns:
        The noisy fraction (it may fall outside [0, 1] because of the noise).
    """
    _check_positive("clip_norm", clip_norm)
    _check_positive("expected_clients", expected_clients)
    sigma_b = expected_clients / 20.0 if count_std is None else count_std
    _check_non_negative("count_std", sigma_b)
    unclipped = float(np.count_nonzero(np.asarray(norms, dtype=np.float64) <= clip_norm))
    return (unclipped + rng.normal(0.0, sigma_b)) / expected_clients


def adaptive_clip_update(state: AdaptiveClipState, unclipped_fraction: float) -> AdaptiveClipState:
    """Geometric update ``C <- C * exp(-eta_C * (b - gamma))``.

    When more than the target fraction is unclipped (``b > gamma``) the norm
    shrinks, otherwise it grows, so ``C`` drifts to the ``gamma`` quantile of the
    update norms. The multiplicative form makes the step size relative to ``C``,
    which matters because norms span orders of magnitude during training.

    Args:
        state: Current state.
        unclipped_fraction: ``b``, from :func:`noisy_unclipped_fraction`.

    Returns:
        The next state.
    """
    if not math.isfinite(unclipped_fraction):
        raise ValueError(f"unclipped_fraction must be finite, got {unclipped_fraction!r}")
    factor = math.exp(-state.learning_rate * (unclipped_fraction - state.target_quantile))
    return AdaptiveClipState(
        clip_norm=state.clip_norm * factor,
        target_quantile=state.target_quantile,
        learning_rate=state.learning_rate,
    )


def adaptive_noise_multiplier(noise_multiplier: float, count_std: float) -> float:
    """Noise multiplier left for the update when the clipped count is also released.

    Andrew et al. (Thm. 1) show that noising the update sum with ``z_delta`` and
    the count with ``sigma_b`` is, for privacy, one Gaussian mechanism with
    ``z^-2 = z_delta^-2 + (2 sigma_b)^-2`` (the count's per-client bit has
    sensitivity 1/2 after centring). To spend the same budget as plain DP-FedAvg
    with ``z``, use ``z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)`` for the update.

    Args:
        noise_multiplier: ``z``, the total multiplier the accountant is given.
        count_std: ``sigma_b`` of :func:`noisy_unclipped_fraction`.

    Returns:
        ``z_delta``.

    Raises:
        ValueError: If ``count_std <= z / 2``, where the count alone would
            exhaust the budget (``(2 sigma_b)^-2 >= z^-2``).
    """
    _check_positive("noise_multiplier", noise_multiplier)
    _check_positive("count_std", count_std)
    remainder = noise_multiplier**-2 - (2.0 * count_std) ** -2
    if remainder <= 0:
        raise ValueError(
            f"count_std must be > noise_multiplier / 2 = {noise_multiplier / 2:g}, got {count_std!r}"
        )
    return remainder**-0.5
