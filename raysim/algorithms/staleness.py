"""Staleness discounts and the FedAsync mixing step for asynchronous FL.

In asynchronous training a client's update was computed against a global model
that is ``staleness`` versions old by the time it arrives; the older it is, the
less it should move the current model.

* Xie, Koyejo, Gupta, "Asynchronous Federated Optimization", 2019,
  arXiv:1903.03934 (FedAsync: constant, polynomial and hinge discounts and
  the mixing rule ``x_t = (1 - alpha_t) x_{t-1} + alpha_t x_new``).
* Nguyen et al., "Federated Learning with Buffered Asynchronous Aggregation",
  AISTATS 2022, arXiv:2106.06639 (FedBuff: ``1 / sqrt(1 + staleness)``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from raysim.algorithms.server_opt import as_update

__all__ = [
    "STALENESS_FUNCTIONS",
    "StalenessWeight",
    "constant",
    "fedasync_mix",
    "fedbuff",
    "hinge",
    "polynomial",
]


def _check_staleness(staleness: float) -> float:
    if not staleness >= 0:  # also rejects NaN
        raise ValueError(f"staleness must be >= 0, got {staleness!r}")
    return float(staleness)


def constant(staleness: float) -> float:
    """No discount: every update counts fully, however stale."""
    _check_staleness(staleness)
    return 1.0


def polynomial(staleness: float, a: float = 0.5) -> float:
    """``(staleness + 1) ** -a``: smooth decay, never reaching zero.

    Args:
        staleness: Model versions elapsed since the client pulled, ``>= 0``.
        a: Decay exponent ``>= 0`` (0 is the constant discount).
    """
    staleness = _check_staleness(staleness)
    if not a >= 0:
        raise ValueError(f"a must be >= 0, got {a!r}")
    return (staleness + 1.0) ** -a


def hinge(staleness: float, a: float = 10.0, b: float = 4.0) -> float:
    """``1`` up to ``b`` versions old, then ``1 / (a (staleness - b) + 1)``.

    Tolerates a little staleness for free and penalises the rest sharply.

    Args:
        staleness: Model versions elapsed since the client pulled, ``>= 0``.
        a: Slope of the penalty past the hinge, ``>= 0``.
        b: Hinge point, ``>= 0``.
    """
    staleness = _check_staleness(staleness)
    if not a >= 0:
        raise ValueError(f"a must be >= 0, got {a!r}")
    if not b >= 0:
        raise ValueError(f"b must be >= 0, got {b!r}")
    return 1.0 if staleness <= b else 1.0 / (a * (staleness - b) + 1.0)


def fedbuff(staleness: float) -> float:
    """FedBuff's ``1 / sqrt(1 + staleness)``: the polynomial rule fixed at ``a = 0.5``."""
    return polynomial(staleness, a=0.5)


STALENESS_FUNCTIONS: dict[str, Callable[..., float]] = {
    "constant": constant,
    "polynomial": polynomial,
    "hinge": hinge,
    "fedbuff": fedbuff,
}


@dataclass(frozen=True)
class StalenessWeight:
    """A configured staleness discount, callable as ``weight(staleness) -> float``.

    Attributes:
        kind: One of ``STALENESS_FUNCTIONS``.
        a: The function's ``a``, or ``None`` for its default; only for kinds
            that take one (``polynomial``, ``hinge``).
        b: The function's ``b``, or ``None`` for its default (``hinge`` only).
    """

    kind: str
    a: float | None = None
    b: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in STALENESS_FUNCTIONS:
            raise ValueError(
                f"kind must be one of {sorted(STALENESS_FUNCTIONS)}, got {self.kind!r}"
            )
        accepted = inspect.signature(STALENESS_FUNCTIONS[self.kind]).parameters
        for name in ("a", "b"):
            if getattr(self, name) is not None and name not in accepted:
                raise ValueError(
                    f"{name} must be None for kind {self.kind!r}, which takes no {name}"
                )
        self(0)  # validate a and b now rather than at the first stale update

    def _params(self) -> dict[str, float]:
        return {name: value for name, value in (("a", self.a), ("b", self.b)) if value is not None}

    def __call__(self, staleness: float) -> float:
        """Return the discount in (0, 1] for an update ``staleness`` versions old."""
        return STALENESS_FUNCTIONS[self.kind](staleness, **self._params())


def fedasync_mix(
    params: np.ndarray, client_params: np.ndarray, alpha: float, weight: float
) -> np.ndarray:
    """FedAsync update ``x_t = (1 - a_t) x_{t-1} + a_t x_new`` with ``a_t = alpha * weight``.

    Args:
        params: Current global params ``x_{t-1}``, 1-D floating array.
        client_params: The arriving client model ``x_new``, same shape.
        alpha: Base mixing rate in (0, 1].
        weight: Staleness discount in [0, 1], e.g. ``StalenessWeight(...)(s)``.

    Returns:
        The new global params, with the dtype of ``params`` (like
        ``raysim.algorithms.server_opt``, so the global model keeps one dtype).
        ``alpha * weight == 1`` returns ``client_params`` exactly.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight!r}")
    client = as_update(params, client_params, name="client_params")
    params = np.asarray(params)
    rate = alpha * weight
    mixed = (1.0 - rate) * params.astype(np.float64) + rate * client
    return mixed.astype(params.dtype)
