"""Uniform selection, raysim's default: idle, online clients drawn uniformly from the seed.

The draw is a function of (population, busy set, time, seed, dispatch number) alone. Only online
clients are ever drawn, which is why the DP accountant's sampling rate assumes an always-online
population (combinations.py refuses DP with availability models).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Iterable

import numpy as np

from raysim.sim.cost.devices import Population
from raysim.sim.selection.protocol import SelectionView


def is_idle_online(population: Population, client: int, *, busy: set[int] | frozenset[int], now: float) -> bool:
    """Whether ``client`` has no task in flight and its device is online at ``now``: the one rule
    of who a dispatch may start (a selector's ``view.available``)."""
    return client not in busy and population.profile(client).availability.online_at(now)


def idle_online(population: Population, candidates: Iterable[int], *, busy: set[int] | frozenset[int],
                now: float) -> list[int]:
    """The candidates, in order, that are idle and online at ``now``."""
    return [int(c) for c in candidates if is_idle_online(population, int(c), busy=busy, now=now)]


def sample_clients(num_clients: int, count: int, *, busy: set[int] | frozenset[int],
                   available: Callable[[int], bool], draw: np.random.Generator) -> list[int]:
    """Uniformly samples ``count`` available clients (fewer when fewer are), sorted."""
    # A prefix of a random permutation, drawn in O(prefix) when the population is large;
    # the whole permutation only when available clients are scarce.
    prefix = min(num_clients, 4 * (count + len(busy)) + 64)
    chosen = [int(c) for c in draw.choice(num_clients, size=prefix, replace=False) if available(int(c))][:count]
    if len(chosen) < count and prefix < num_clients:
        chosen = [int(c) for c in draw.permutation(num_clients) if available(int(c))][:count]
    return sorted(chosen)


def next_online(population: Population, *, busy: set[int], now: float) -> float:
    """When the next idle client comes online; raises when none ever will."""
    starts = [a for c in range(population.num_clients) if c not in busy
              for a, _ in population.profile(c).availability.intervals if a > now]
    if not starts:
        raise RuntimeError("no client is idle and none will come online: the population is exhausted")
    return min(starts)


class UniformSelector:
    """Every available client equally likely; sees no outcome."""

    def select(self, count: int, view: SelectionView, draw: np.random.Generator) -> list[int]:
        return sample_clients(view.num_clients, count, busy=view.busy, available=view.available, draw=draw)


@dataclass(frozen=True)
class UniformSelection:
    """Every idle, online client equally likely, drawn from the seed (the default)."""

    kind: ClassVar[str] = "uniform"

    def build(self) -> UniformSelector:
        return UniformSelector()
