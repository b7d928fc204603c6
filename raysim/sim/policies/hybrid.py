"""Semi-asynchronous rounds: aggregate at K arrivals or at a deadline, whichever comes first.

A round dispatches the cohort and closes as soon as ``min_updates`` of its updates have
arrived, or ``deadline_s`` after it opened. Updates that arrive after their round closed are
either applied in the next server step, discounted by staleness, or dropped
(``late_updates``). The next round opens at once, on the clients that are idle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from raysim.sim.policies.base import (
    Action, Arrival, Discard, Dispatch, Dispatched, Event, Failure, PolicyFacts, ServerView, SetTimer, Timer,
)
from raysim.algorithms.staleness import StalenessWeight
from raysim.sim.policies.staleness_buffer import StalenessBuffer


@dataclass(frozen=True, kw_only=True)
class HybridPolicy:
    """``[policy] kind = "hybrid"``: deadline plus minimum count; late updates stale or dropped."""

    kind: ClassVar[str] = "hybrid"
    min_updates: int
    deadline_s: float
    late_updates: Literal["stale", "drop"] = "stale"
    staleness: StalenessWeight = field(default_factory=lambda: StalenessWeight("polynomial"))

    def __post_init__(self) -> None:
        if self.min_updates < 1:
            raise ValueError(f"min_updates must be >= 1, got {self.min_updates}")
        if self.deadline_s <= 0:
            raise ValueError(f"deadline_s must be > 0, got {self.deadline_s}")

    def facts(self, cohort: int, population: int) -> PolicyFacts:
        """A round dispatches the cohort; a step may also carry late updates of earlier rounds,
        which are not counted on."""
        return PolicyFacts(updates_per_step=cohort, tasks_per_round=min(cohort, population))

    def build(self) -> "HybridRounds":
        return HybridRounds(self)


class HybridRounds:
    def __init__(self, spec: HybridPolicy):
        self.spec = spec
        self.buffer = StalenessBuffer(spec.staleness)
        self.round_tasks: set[int] = set()  # tasks of the open round still out
        self.round = 0

    def start(self, view: ServerView) -> list[Action]:
        return self._open(view)

    def on_event(self, event: Event, view: ServerView) -> list[Action]:
        if isinstance(event, Dispatched):
            self.round_tasks |= {t.task_id for t in event.tasks}
            return []
        if isinstance(event, Timer):
            return self._close(view) if event.tag == f"deadline-{self.round}" else []
        in_round = event.task.task_id in self.round_tasks
        self.round_tasks.discard(event.task.task_id)
        if isinstance(event, Arrival) and not in_round and self.spec.late_updates == "drop":
            return [Discard((event.task.task_id,))]
        if isinstance(event, Arrival):
            self.buffer.add(event.task)
        arrived_this_round = sum(1 for t in self.buffer.tasks if t.base_version == view.version)
        if isinstance(event, Arrival | Failure) and in_round and (
            arrived_this_round >= self.spec.min_updates or not self.round_tasks
        ):
            return self._close(view)
        return []

    def _open(self, view: ServerView) -> list[Action]:
        self.round += 1
        self.round_tasks = set()
        return [Dispatch(count=view.clients_per_round), SetTimer(view.now + self.spec.deadline_s, f"deadline-{self.round}")]

    def _close(self, view: ServerView) -> list[Action]:
        # The driver applies the aggregate before the dispatch, so the next round starts on the new model.
        return [self.buffer.flush(view.version), *self._open(view)]
