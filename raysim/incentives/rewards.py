"""Paying clients from their contributions: proportional shares of a per-round budget, and the
Beta reputation that remembers, with decay, whose updates helped.

Proportional: r_i = B max(phi_i, 0) / sum_j max(phi_j, 0). When no value is positive nothing is
paid (the budget is kept): dividing by a sum that is zero or negative is what frameworks that
"normalise by sum(phi)" get wrong.

Beta reputation (Josang & Ismail, 15th Bled eConference 2002): alpha <- lambda alpha + a_t,
beta <- lambda beta + b_t, R = (alpha + 1) / (alpha + beta + 2), 0.5 with no data. Here a valued
round's outcome is positive when the client's value is > 0, negative otherwise; a round that was
not valued (GTG's round truncation, a budget cut: ``Estimate.valued``) is no outcome and is not
observed at all, since a 0 put there by convention is no evidence against the client. With one
outcome a round, positive with probability p, the counts tend to p / (1 - lambda) and
(1 - p) / (1 - lambda).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


def proportional(values: Mapping[int, float], budget: float) -> dict[int, float]:
    """Each client's share of ``budget``, in proportion to its positive value; all 0 when none is."""
    positive = {c: max(float(v), 0.0) for c, v in values.items()}
    total = sum(positive.values())
    if total <= 0:
        return {c: 0.0 for c in values}
    return {c: budget * (v / total) for c, v in positive.items()}


@dataclass(frozen=True)
class BetaReputation:
    """Decayed counts of positive (``alpha``) and negative (``beta``) outcomes."""

    alpha: float = 0.0
    beta: float = 0.0

    def observe(self, positive: float, negative: float, decay: float) -> "BetaReputation":
        """The reputation after one round's outcomes, older ones weighted down by ``decay``."""
        return BetaReputation(decay * self.alpha + positive, decay * self.beta + negative)

    @property
    def score(self) -> float:
        return (self.alpha + 1.0) / (self.alpha + self.beta + 2.0)


def stationary_score(p: float, decay: float) -> float:
    """R at the expected counts of a client positive with probability p each round:
    (p + 1 - lambda) / (1 + 2 (1 - lambda)); it tends to p as lambda -> 1."""
    return (p + 1.0 - decay) / (1.0 + 2.0 * (1.0 - decay))
