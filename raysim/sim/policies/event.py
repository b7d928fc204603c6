"""Event-triggered communication: a client sends only when its model has changed enough.

Each of the cohort's clients trains continuously on its own model. When a local training task
ends, it compares its model with the one it last synchronised to: if the norm of the change
exceeds ``threshold`` it sends (and the server mixes the update in at once, FedAsync-style,
with rate ``alpha`` times a staleness weight); otherwise it keeps training locally and the
message is saved (``messages_saved`` in rounds.parquet). After sending, the client starts
again from the newest global model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from raysim.algorithms.staleness import StalenessWeight
from raysim.sim.policies.base import Action, Aggregate, Arrival, Dispatch, Event, Failure, PolicyFacts, ServerView, Suppressed


@dataclass(frozen=True, kw_only=True)
class EventPolicy:
    """``[policy] kind = "event"``: send when ||local change|| > ``threshold``."""

    kind: ClassVar[str] = "event"
    threshold: float
    alpha: float = 0.5
    staleness: StalenessWeight = field(default_factory=lambda: StalenessWeight("polynomial"))

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")

    def facts(self, cohort: int, population: int) -> PolicyFacts:
        """Each sent update is mixed on its own; the client decides whether to send."""
        return PolicyFacts(updates_per_step=1, tasks_per_round=min(cohort, population), mixes_one_update=True,
                           client_decides_sending=True)

    def build(self) -> "EventTriggered":
        return EventTriggered(self)


class EventTriggered:
    def __init__(self, spec: EventPolicy):
        self.spec = spec

    def start(self, view: ServerView) -> list[Action]:
        return [Dispatch(count=view.clients_per_round, trigger=self.spec.threshold)]

    def on_event(self, event: Event, view: ServerView) -> list[Action]:
        if isinstance(event, Suppressed):
            return [self._again(event.task.client_id)]
        if isinstance(event, Arrival):
            rate = self.spec.alpha * self.spec.staleness(view.version - event.task.base_version)
            return [Aggregate((event.task.task_id,), scales=(rate,), rebase=True), self._again(event.task.client_id)]
        if isinstance(event, Failure):
            return [Dispatch(count=1, trigger=self.spec.threshold)]
        return []

    def _again(self, client: int) -> Dispatch:
        return Dispatch(clients=(client,), trigger=self.spec.threshold)
