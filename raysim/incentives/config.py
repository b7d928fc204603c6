"""``[incentive]``: how the server pays clients from their contributions, and what that does to
who takes part. Rules that need ``[contribution]`` (a method to pay by) are in
``scenario/combinations.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class IncentiveConfig:
    """``scheme``: ``off`` (no incentives: clients drawn as without [incentive]), ``equal`` (the
    budget split evenly among a round's participants, whatever they contributed),
    ``proportional`` (in proportion to the positive contributions) or ``reputation``
    (proportional, and clients drawn in proportion to their Beta reputation). It pays ``budget``
    per round by the contribution ``method`` (empty: the first of ``contribution.methods``);
    ``decay`` is the reputation's forgetting factor. With a price
    (``price_per_compute_s`` or ``price_per_mb`` > 0) clients decline rounds whose expected reward
    is below their cost (incentives/participation.py). A price is at most the budget: a compute
    second or a megabyte costing more than a whole round pays prices clients out of the rounds
    (a price of 1e12 stopped the first round mid-run, after the run had started)."""

    scheme: Literal["off", "equal", "proportional", "reputation"] = "off"
    budget: float = 1.0
    method: str = ""
    decay: float = 0.9
    price_per_compute_s: float = 0.0
    price_per_mb: float = 0.0

    def __post_init__(self) -> None:
        if self.budget <= 0:
            raise ValueError(f"budget must be > 0 (the reward paid per round), got {self.budget}")
        if not 0 <= self.decay <= 1:
            raise ValueError(f"decay must be in [0, 1] (1 = never forget), got {self.decay}")
        for name, unit in (("price_per_compute_s", "compute second"), ("price_per_mb", "megabyte")):
            price = getattr(self, name)
            if not 0 <= price <= self.budget:
                raise ValueError(f"{name} must be >= 0 and at most budget = {self.budget:g} (what a round pays in "
                                 f"all), got {price:g}: a {unit} would cost more than a whole round pays; lower the "
                                 "price or raise the budget")

    @property
    def priced(self) -> bool:
        return self.price_per_compute_s > 0 or self.price_per_mb > 0

    @property
    def active(self) -> bool:
        return self.scheme != "off"
