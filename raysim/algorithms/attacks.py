"""Simple Byzantine client behaviours used to exercise robust aggregation.

These are the standard baseline attacks from the robust-FL literature:

* Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries:
  Byzantine Tolerant Gradient Descent", NeurIPS 2017 (Gaussian and
  large-norm updates).
* Li, Xu, Chen, Giannakis, Ling, "RSA: Byzantine-Robust Stochastic Aggregation
  Methods for Distributed Learning from Heterogeneous Datasets", AAAI 2019,
  arXiv:1811.03761 (sign flipping).
* Tolpegin, Truex, Gursoy, Liu, "Data Poisoning Attacks Against Federated
  Learning Systems", ESORICS 2020, arXiv:2007.08432 (label flipping).

They are deliberately unsophisticated: their job is to show
that a rule in ``raysim.algorithms.robust`` resists what the plain mean does not.

Update attacks are called as ``attack(delta, rng)`` and return a float64 delta;
every one accepts ``rng`` so the runtime can call them uniformly, and only the
random ones use it. ``LabelFlip`` is a data-poisoning attack instead, called on
the client's labels before local training; ``target`` says which is which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from raysim.seeding import Stream

__all__ = [
    "ATTACKS",
    "ATTACKER_STREAM",
    "GaussianNoise",
    "LabelFlip",
    "Scaled",
    "SignFlip",
    "choose_attackers",
]

ATTACKER_STREAM = int(Stream.ATTACK)
"""Spawn key for the attacker-selection stream (``Stream.ATTACK`` of raysim.seeding).

Keying the generator by ``[seed, stream]`` makes attacker selection independent
of every seeded draw of a run that uses a different stream id, so adding an
attack does not change, say, the client sampling sequence.
"""


@dataclass(frozen=True)
class SignFlip:
    """Send ``-scale * delta``: push the model uphill instead of downhill.

    Attributes:
        scale: Magnitude multiplier, > 0.
    """

    scale: float = 1.0
    target: ClassVar[Literal["update", "labels"]] = "update"

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale!r}")

    def __call__(self, delta: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Return the flipped delta; ``rng`` is unused."""
        return -self.scale * np.asarray(delta, dtype=np.float64)


@dataclass(frozen=True)
class Scaled:
    """Send ``factor * delta``: a large-norm update that dominates a plain mean.

    Attributes:
        factor: Multiplier, > 0 (use ``SignFlip`` to reverse the direction).
    """

    factor: float = 10.0
    target: ClassVar[Literal["update", "labels"]] = "update"

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"factor must be > 0, got {self.factor!r}")

    def __call__(self, delta: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Return the scaled delta; ``rng`` is unused."""
        return self.factor * np.asarray(delta, dtype=np.float64)


@dataclass(frozen=True)
class GaussianNoise:
    """Send ``delta + N(0, std^2)`` per coordinate.

    Attributes:
        std: Noise standard deviation, >= 0.
    """

    std: float = 1.0
    target: ClassVar[Literal["update", "labels"]] = "update"

    def __post_init__(self) -> None:
        if not self.std >= 0:
            raise ValueError(f"std must be >= 0, got {self.std!r}")

    def __call__(self, delta: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Return the noised delta, drawing from ``rng`` (required)."""
        if rng is None:
            raise ValueError("rng must be a numpy Generator for GaussianNoise, got None")
        delta = np.asarray(delta, dtype=np.float64)
        return delta + rng.normal(0.0, self.std, size=delta.shape)


@dataclass(frozen=True)
class LabelFlip:
    """Relabel ``y -> num_classes - 1 - y`` so the client trains on wrong targets.

    Attributes:
        num_classes: Number of classes, >= 2.
    """

    num_classes: int
    target: ClassVar[Literal["update", "labels"]] = "labels"

    def __post_init__(self) -> None:
        if not self.num_classes >= 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes!r}")

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        """Return flipped integer labels with the dtype of ``labels``."""
        labels = np.asarray(labels)
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}")
        if labels.size and not (labels.min() >= 0 and labels.max() < self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes - 1}]")
        return (self.num_classes - 1 - labels).astype(labels.dtype)


@dataclass(frozen=True)
class FreeRider:
    """Send nothing learned: a zero update (``std`` = 0), or pure noise N(0, std^2) in place of
    the delta (the free-rider of the CFFL code adds noise). Planted free-riders for checking
    contribution estimates (raysim/contribution/), which should rank them last.

    Attributes:
        std: Standard deviation of the sent noise, >= 0.
    """

    std: float = 0.0
    target: ClassVar[Literal["update", "labels"]] = "update"

    def __post_init__(self) -> None:
        if not self.std >= 0:
            raise ValueError(f"std must be >= 0, got {self.std!r}")

    def __call__(self, delta: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Zeros, or noise drawn from ``rng`` (required when ``std`` > 0), shaped like ``delta``."""
        if not self.std:
            return np.zeros(np.shape(delta))
        if rng is None:
            raise ValueError("rng must be a numpy Generator for a noisy FreeRider, got None")
        return rng.normal(0.0, self.std, size=np.shape(delta))


ATTACKS: dict[str, type] = {
    "sign_flip": SignFlip,
    "scaled": Scaled,
    "gaussian": GaussianNoise,
    "label_flip": LabelFlip,
    "free_rider": FreeRider,
}


def choose_attackers(num_clients: int, fraction: float, seed: int) -> np.ndarray:
    """Pick which clients are Byzantine, reproducibly from the run seed.

    Args:
        num_clients: Population size, >= 1.
        fraction: Share of Byzantine clients in [0, 1]; the count is
            ``round(fraction * num_clients)`` (Python's round-half-to-even).
        seed: Non-negative run seed; the draw uses
            ``np.random.default_rng([seed, ATTACKER_STREAM])``.

    Returns:
        Sorted int64 client ids, without repeats.
    """
    if not num_clients >= 1:
        raise ValueError(f"num_clients must be >= 1, got {num_clients!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    if not seed >= 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    rng = np.random.default_rng([seed, ATTACKER_STREAM])
    chosen = rng.choice(num_clients, size=round(fraction * num_clients), replace=False)
    return np.sort(chosen).astype(np.int64)
