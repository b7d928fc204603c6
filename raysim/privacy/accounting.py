"""Renyi-DP accounting for DP-FedAvg rounds, on top of opacus' RDP analysis.

Sources: I. Mironov, "Renyi Differential Privacy" (arXiv:1702.07476) for the
accountant; I. Mironov, K. Talwar, L. Zhang, "Renyi Differential Privacy of the
Sampled Gaussian Mechanism" (arXiv:1908.10530) for the per-round RDP of a
Poisson-subsampled Gaussian, as computed by ``opacus.accountants.analysis.rdp``
(itself a port of TF-Privacy's ``rdp_accountant``). Orders and the RDP-to-(eps,
delta) conversion are opacus' own (``RDPAccountant.DEFAULT_ALPHAS``,
``get_privacy_spent``), so results match ``opacus.accountants.RDPAccountant``.

Three sampling cases, with one client's whole dataset as the privacy unit:

* ``"poisson"``: every client joins a round independently with probability
  ``q``. This is what the sampled-Gaussian analysis proves.
* ``"fixed_size"``: a cohort of exactly ``m`` out of ``N`` clients, drawn
  without replacement. opacus has no accountant for this, so we use the
  **Poisson approximation**: ``q = m / N`` plugged into the Poisson analysis,
  which is what TF-Privacy's ``compute_dp_sgd_privacy`` reports for fixed batch
  sizes. It is an approximation, not a proven bound: Lebeda, Regehr, Kamath,
  Steinke (arXiv:2405.20769) show it can understate epsilon for some
  parameters. A proven RDP bound for sampling without replacement (under
  substitution adjacency) is Wang, Balle, Kasiviswanathan (arXiv:1808.00087),
  not implemented here.
* local DP (:func:`local_epsilon`): each client's noisy update is its own
  Gaussian-mechanism release, so the client's epsilon is that of an unsampled
  (``q = 1``) Gaussian composed over the rounds it took part in.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

Sampling = Literal["poisson", "fixed_size"]

ORDERS: tuple[float, ...] = tuple(RDPAccountant.DEFAULT_ALPHAS)
"""RDP orders searched for the best (eps, delta) conversion (opacus' defaults)."""


def _check_delta(delta: float) -> None:
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")


def _check_mechanism(noise_multiplier: float, sample_rate: float) -> None:
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError(f"noise_multiplier must be a finite number > 0, got {noise_multiplier!r}")
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate!r}")


@functools.lru_cache(maxsize=256)
def _step_rdp(noise_multiplier: float, sample_rate: float) -> tuple[float, ...]:
    """RDP of one round at every order; cached because rounds usually repeat (z, q)."""
    _check_mechanism(noise_multiplier, sample_rate)
    return tuple(compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=list(ORDERS)))


def _round_rdp(noise_multiplier: float, sample_rate: float, steps: int) -> np.ndarray:
    """RDP composes additively: ``steps`` identical rounds cost ``steps`` times one."""
    return np.asarray(_step_rdp(float(noise_multiplier), float(sample_rate)), dtype=np.float64) * steps


def _epsilon(rdp: np.ndarray, delta: float) -> float:
    _check_delta(delta)
    eps, _ = get_privacy_spent(orders=list(ORDERS), rdp=rdp, delta=delta)
    return float(eps)


def sample_rate_for(
    sampling: Sampling,
    *,
    sample_rate: float | None = None,
    population: int | None = None,
    cohort: int | None = None,
) -> float:
    """The ``q`` fed to the sampled-Gaussian analysis for a sampling scheme.

    Args:
        sampling: ``"poisson"`` (needs ``sample_rate``) or ``"fixed_size"``
            (needs ``population`` N and ``cohort`` m; gives ``m / N``, the
            Poisson approximation described in the module docstring).
        sample_rate: Poisson inclusion probability; for ``"fixed_size"`` it may
            be given only if it equals ``cohort / population``.
        population: Number of clients N.
        cohort: Clients per round m.

    Returns:
        The per-round sampling rate ``q``.
    """
    if sampling == "poisson":
        if sample_rate is None:
            raise ValueError('sample_rate is required when sampling="poisson"')
        return float(sample_rate)
    if sampling == "fixed_size":
        if population is None or cohort is None or not 1 <= cohort <= population:
            raise ValueError(
                f'sampling="fixed_size" needs ints 1 <= cohort <= population, got cohort={cohort!r}, '
                f"population={population!r}"
            )
        rate = cohort / population
        if sample_rate is not None and not math.isclose(sample_rate, rate):
            raise ValueError(
                f"sample_rate must be omitted or equal cohort / population = {rate:g}, got {sample_rate!r}"
            )
        return rate
    raise ValueError(f'sampling must be "poisson" or "fixed_size", got {sampling!r}')


def epsilon_after(
    steps: int,
    *,
    noise_multiplier: float,
    delta: float,
    sample_rate: float | None = None,
    sampling: Sampling = "poisson",
    population: int | None = None,
    cohort: int | None = None,
) -> float:
    """Epsilon of ``steps`` DP-FedAvg rounds with the same parameters (pure).

    Args:
        steps: Number of rounds (>= 0).
        noise_multiplier: ``z`` of every round.
        delta: Target delta in (0, 1).
        sample_rate, sampling, population, cohort: See :func:`sample_rate_for`.

    Returns:
        The smallest epsilon over opacus' RDP orders (0.0 for 0 steps).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    rate = sample_rate_for(sampling, sample_rate=sample_rate, population=population, cohort=cohort)
    if steps == 0:
        _check_mechanism(noise_multiplier, rate)
        _check_delta(delta)
        return 0.0
    return _epsilon(_round_rdp(noise_multiplier, rate, steps), delta)


def local_epsilon(participations: int, *, noise_multiplier: float, delta: float) -> float:
    """Epsilon of one client under local DP after ``participations`` releases.

    Each release is an unsampled Gaussian mechanism on the client's own data
    (sensitivity ``S``, noise ``z S``): sampling by the server does not amplify
    privacy, because the client's release is visible whenever it happens.
    """
    return epsilon_after(participations, noise_multiplier=noise_multiplier, delta=delta, sample_rate=1.0)


class PrivacyAccountant:
    """Running RDP total of a training run, with the epsilon after every round.

    Stateful on purpose, like opacus' ``RDPAccountant``: rounds may change ``z``
    or ``q`` (e.g. a varying cohort), and RDP simply adds up across rounds.

    Attributes:
        delta: The delta at which :attr:`history` is reported.
        history: Epsilon after each recorded round, at :attr:`delta`.
    """

    def __init__(self, delta: float) -> None:
        _check_delta(delta)
        self.delta = delta
        self.history: list[float] = []
        self._rdp = np.zeros(len(ORDERS))

    def step(self, noise_multiplier: float, sample_rate: float) -> float:
        """Record one round and return the epsilon spent so far at :attr:`delta`.

        For fixed-size cohorts pass ``sample_rate_for("fixed_size", ...)``; for
        a local-DP client pass ``sample_rate=1`` once per participation.
        """
        self._rdp = self._rdp + _round_rdp(noise_multiplier, sample_rate, 1)
        self.history.append(self.epsilon())
        return self.history[-1]

    def epsilon_if_step(self, noise_multiplier: float, sample_rate: float) -> float:
        """Epsilon after one more such round, without recording it: a run with a budget stops
        before the round that would cross it, not after."""
        return _epsilon(self._rdp + _round_rdp(noise_multiplier, sample_rate, 1), self.delta)

    def epsilon(self, delta: float | None = None) -> float:
        """Epsilon spent so far at ``delta`` (default :attr:`delta`); 0.0 before any round."""
        delta = self.delta if delta is None else delta
        if not self._rdp.any():
            _check_delta(delta)
            return 0.0
        return _epsilon(self._rdp, delta)

    @property
    def steps(self) -> int:
        """Number of rounds recorded."""
        return len(self.history)

