"""``[contribution]``: which valuations a run computes each round, and on what.

Settings live on this floor (as ``PrivacyConfig`` does in privacy/) and the scenario composes
them; rules that need other sections (exact Shapley against the most updates a server step
can combine) are in ``scenario/combinations.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from raysim.contribution.plant import PlantConfig

METHODS = {
    "loo": "leave-one-out: v(N) - v(N without i), n + 1 evaluations per round",
    "exact": "exact Shapley over the round's participants: 2^n evaluations per round",
    "tmc": "TMC-Shapley (Ghorbani & Zou 2019): truncated Monte-Carlo over uniform orders",
    "gtg": "GTG-Shapley (Liu et al. 2022): between/within-round truncation, guided orders",
    "fedsv": "FedSV (Wang et al. 2020): exact round Shapley, absent clients 0, summed over rounds",
}


@dataclass(frozen=True, kw_only=True)
class ContributionConfig:
    """Valuations of each server step's participants (see raysim/contribution/).

    ``methods`` empty: off. The utility is ``metric`` (accuracy, or minus the mean loss) of a
    coalition's model on a validation set held by the server: ``validation_share`` of the
    training examples, drawn from the seed before the clients' shards are cut and never
    trained on, so it is apart from the test set. ``max_evaluations`` caps each method's
    utility evaluations per round; the permutation methods stop early when it is reached.
    """

    methods: tuple[str, ...] = ()
    metric: Literal["accuracy", "loss"] = "accuracy"
    validation_share: float = 0.1
    max_evaluations: int = 4096
    max_permutations: int = 500
    truncation: float = 0.001  # within-round: |v(N) - v(prefix)| below this ends an order's walk
    round_truncation: float = 0.01  # gtg: a round with |v(N) - v(empty)| at most this is all zeros
    tolerance: float = 0.05  # the convergence test's mean relative change
    plant: PlantConfig = field(default_factory=PlantConfig)  # planted ground truth (validation scenarios)

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods: {unknown[0]!r} is unknown; choose from {sorted(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods lists a method twice: {list(self.methods)}")
        if not 0 < self.validation_share < 1:
            raise ValueError(f"validation_share must be in (0, 1) (the server's share of the training "
                             f"examples), got {self.validation_share}")
        if self.max_evaluations < 1:
            raise ValueError(f"max_evaluations must be >= 1 utility evaluation per round, got "
                             f"{self.max_evaluations}: raise it (or remove [contribution] to value nothing)")
        if self.max_permutations < 1:
            raise ValueError(f"max_permutations must be >= 1, got {self.max_permutations}")
        for name in ("truncation", "round_truncation", "tolerance"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def active(self) -> bool:
        return bool(self.methods)
