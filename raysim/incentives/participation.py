"""Who takes part: a client joins a round only when the reward it expects covers its cost.

The cost of one task is what the simulated device spends, priced: compute seconds times
``price_per_compute_s`` plus megabytes moved times ``price_per_mb``. The expected reward is the
client's mean reward over the rounds it was valued in; before its first, the even share of the
budget (B / cohort), the prior any client can compute from the announced scheme. So a scheme
that pays free-riders nothing makes them leave, and one that pays too little for a slow
device's compute keeps that device away: the incentive changes who participates.
"""

from __future__ import annotations

from dataclasses import dataclass


def task_cost(compute_s: float, megabytes: float, *, price_per_compute_s: float, price_per_mb: float) -> float:
    return compute_s * price_per_compute_s + megabytes * price_per_mb


def joins(expected: float, cost: float) -> bool:
    """A client takes part when its expected reward covers its cost (ties join)."""
    return expected >= cost


@dataclass(frozen=True)
class Earnings:
    """What a client has been paid: the total and the rounds it was valued in."""

    total: float = 0.0
    rounds: int = 0

    def add(self, reward: float) -> "Earnings":
        return Earnings(self.total + reward, self.rounds + 1)

    def expected(self, prior: float) -> float:
        """The mean reward per valued round, or ``prior`` before any."""
        return self.total / self.rounds if self.rounds else prior
