"""The selector protocol: before each dispatch, a selector sees what the simulator knows of the
clients and returns the ones to start.

A selector is the half of a federated round that decides *who* trains (the policy decides *when*
and *how many*). Selection research feeds on outcomes: Power-of-Choice (Cho, Wang, Joshi,
arXiv:2010.01243) takes the highest-loss candidates, Oort (Lai et al., OSDI 2021) ranks clients
by loss-based utility and measured speed. So the view carries, per client that has been tried,
its :class:`~raysim.sim.selection.outcomes.ClientRecord`, and the simulator's clock: a selector
never needs a dictionary kept behind raysim's back, and its own state (any attribute of plain
data) is checkpointed with the run.

A user's selector is a frozen dataclass of its settings with ``build(self)`` returning an object
with this protocol's ``select``, named ``[selection.selector] kind = "package.module:Name"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from raysim.sim.selection.outcomes import ClientRecord


@dataclass(frozen=True)
class SelectionView:
    """What a selector may read at a dispatch.

    ``round`` is the round the dispatched tasks are for (server steps so far, + 1); ``now`` the
    simulated time; ``examples[c]`` client c's training examples; ``busy`` the clients with a task
    in flight; ``records`` a record for every client tried so far (absent: never tried);
    ``available(c)``: idle and online now (only those may be returned); ``expected_duration_s(c)``
    what a task of client c would take on its device profile at the configured epochs (download,
    compute, upload), the platform's estimate Oort ranks unexplored clients by.
    """

    round: int
    now: float
    num_clients: int
    examples: Sequence[int]
    busy: frozenset[int]
    records: Mapping[int, ClientRecord]
    available: Callable[[int], bool]
    expected_duration_s: Callable[[int], float]

    def candidates(self) -> list[int]:
        """Every idle, online client, in id order: O(population), which a selector for a
        million clients avoids (``uniform.sample_clients`` draws a prefix instead)."""
        return [c for c in range(self.num_clients) if c not in self.busy and self.available(c)]


@runtime_checkable
class Selector(Protocol):
    def select(self, count: int, view: SelectionView, draw: np.random.Generator) -> list[int]:
        """At most ``count`` distinct clients, each ``view.available``; ``draw`` is the run's
        generator for this dispatch (seed, dispatch number), the only randomness to use."""
