"""Which clients a dispatch starts: idle, online ones, drawn uniformly from the seed.

Kept apart from the driver so the draw is a function of (population, busy set, time, seed)
alone. Only online clients are ever drawn, which is why the DP accountant's sampling rate
assumes an always-online population (combinations.py refuses DP with availability models).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from raysim.sim.cost.devices import Population


def idle_online(population: Population, candidates: Iterable[int], *, busy: set[int], now: float) -> list[int]:
    """The candidates, in order, that are idle and online at ``now``."""
    return [int(c) for c in candidates if int(c) not in busy and population.profile(int(c)).availability.online_at(now)]


def sample_clients(population: Population, count: int, *, busy: set[int], now: float,
                   draw: np.random.Generator) -> list[int]:
    """Uniformly samples ``count`` idle, online clients (fewer when fewer are), sorted."""
    n = population.num_clients
    # A prefix of a random permutation, drawn in O(prefix) when the population is large;
    # the whole permutation only when idle, online clients are scarce.
    prefix = min(n, 4 * (count + len(busy)) + 64)
    chosen = idle_online(population, draw.choice(n, size=prefix, replace=False), busy=busy, now=now)[:count]
    if len(chosen) < count and prefix < n:
        chosen = idle_online(population, draw.permutation(n), busy=busy, now=now)[:count]
    return sorted(chosen)


def next_online(population: Population, *, busy: set[int], now: float) -> float:
    """When the next idle client comes online; raises when none ever will."""
    starts = [a for c in range(population.num_clients) if c not in busy
              for a, _ in population.profile(c).availability.intervals if a > now]
    if not starts:
        raise RuntimeError("no client is idle and none will come online: the population is exhausted")
    return min(starts)
