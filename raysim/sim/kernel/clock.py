"""The simulated clock: one event heap keyed by (time, priority, sequence number).

As in SimPy's core, the sequence number makes ties deterministic: two events at the same time
and priority come out in the order they were scheduled. Time only moves when an event is
popped, or, for a run kind that keeps no events (the gossip and hierarchy rounds, the vertical
run's phases, the Flower Grid's replies), when it is moved forward to a time it computed
(``advance_to``); it is never read from the wall clock or from how long a Ray task took. Every
kind of run keeps its simulated time in one of these clocks.
"""

from __future__ import annotations

import heapq
from typing import Any

# At equal times, arrivals are seen before failures (a task that ends exactly at a deadline is
# on time), and both before timers and the driver's own events (a deadline fires after
# everything due at that instant).
PRIORITY = {"Arrival": 0, "Failure": 1}
LAST = 2


class SimClock:
    def __init__(self, now: float = 0.0):
        self._now = now
        self._queue: list[tuple[float, int, int, Any]] = []
        self._sequence = 0  # a plain int, so the clock pickles into checkpoints

    @property
    def now(self) -> float:
        return self._now

    def schedule(self, at: float, event: Any) -> None:
        if at < self._now:
            raise ValueError(f"cannot schedule an event in the past ({at} < now {self._now})")
        heapq.heappush(self._queue, (at, PRIORITY.get(type(event).__name__, LAST), self._sequence, event))
        self._sequence += 1

    def advance_to(self, at: float) -> None:
        """Moves time forward to ``at`` (or leaves it at ``at == now``). Going back, to NaN, or past
        an event still scheduled (it would then be seen after its time) is a ValueError: a run
        kind's bug, never a user's."""
        if not at >= self._now:
            raise ValueError(f"the simulated clock only moves forward: from {self._now} to {at} is refused")
        if self._queue and self._queue[0][0] < at:
            raise ValueError(f"cannot move the clock to {at} past the event scheduled at {self._queue[0][0]}")
        self._now = at

    def pop(self) -> tuple[float, Any]:
        """Advances to the next event and returns (time, event)."""
        at, _, _, event = heapq.heappop(self._queue)
        self._now = at
        return at, event

    def __len__(self) -> int:
        return len(self._queue)

    def discard(self, predicate) -> list[Any]:
        """Removes the events for which ``predicate(event)`` holds and returns them."""
        kept, dropped = [], []
        for item in self._queue:
            (dropped if predicate(item[3]) else kept).append(item)
        heapq.heapify(kept)
        self._queue = kept
        return [item[3] for item in dropped]
