"""Periodic aggregation: the server steps every T simulated seconds with whatever arrived.

Clients that reported start again on the newest model at the next tick; clients still
training keep going and their updates land in a later period, discounted by staleness
(server version at aggregation minus the version they started from).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from raysim.sim.policies.base import (
    Action, Arrival, Dispatch, Dispatched, Event, Failure, PolicyFacts, ServerView, SetTimer, Timer,
)
from raysim.algorithms.staleness import StalenessWeight
from raysim.sim.policies.staleness_buffer import StalenessBuffer


@dataclass(frozen=True, kw_only=True)
class PeriodicPolicy:
    """``[policy] kind = "periodic"``: aggregate every ``period_s``, keep the cohort busy."""

    kind: ClassVar[str] = "periodic"
    period_s: float
    staleness: StalenessWeight = field(default_factory=lambda: StalenessWeight("constant"))

    def __post_init__(self) -> None:
        if self.period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {self.period_s}")

    def facts(self, cohort: int, population: int) -> PolicyFacts:
        """The cohort is kept busy; a period's step combines what arrived, up to the cohort."""
        return PolicyFacts(updates_per_step=cohort, tasks_per_round=min(cohort, population))

    def build(self) -> "PeriodicRounds":
        return PeriodicRounds(self)


class PeriodicRounds:
    def __init__(self, spec: PeriodicPolicy):
        self.spec = spec
        self.buffer = StalenessBuffer(spec.staleness)
        self.in_flight = 0

    def start(self, view: ServerView) -> list[Action]:
        return [SetTimer(view.now + self.spec.period_s, "tick"), Dispatch(count=view.clients_per_round)]

    def on_event(self, event: Event, view: ServerView) -> list[Action]:
        if isinstance(event, Dispatched):
            self.in_flight += len(event.tasks)
        elif isinstance(event, Arrival):
            self.in_flight -= 1
            self.buffer.add(event.task)
        elif isinstance(event, Failure):
            self.in_flight -= 1
        elif isinstance(event, Timer):
            actions: list[Action] = [self.buffer.flush(view.version), SetTimer(view.now + self.spec.period_s, "tick")]
            idle = view.clients_per_round - self.in_flight
            return actions + ([Dispatch(count=idle)] if idle > 0 else [])
        return []
