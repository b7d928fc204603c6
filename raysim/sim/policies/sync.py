"""Synchronous rounds: a barrier per round, with optional deadline and over-selection.

With neither, this is the FedAvg loop of McMahan et al. (arXiv:1602.05629). ``over_selection``
and ``deadline_s`` follow FedScale (Lai et al. 2022, arXiv:2105.11367): select 1.3x the cohort
and keep the first K to report; ``partial_work`` accepts stragglers' partial epochs as FedProx
does (Li et al. 2020, arXiv:1812.06127) instead of dropping them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from raysim.sim.policies.base import Action, Aggregate, Arrival, Dispatch, Dispatched, Event, Failure, PolicyFacts, ServerView


@dataclass(frozen=True, kw_only=True)
class SyncPolicy:
    """``[policy] kind = "sync"``."""

    kind: ClassVar[str] = "sync"
    deadline_s: float = 0.0
    over_selection: float = 1.0
    partial_work: bool = False

    def __post_init__(self) -> None:
        if self.deadline_s < 0:
            raise ValueError(f"deadline_s must be >= 0 (0 = no deadline), got {self.deadline_s}")
        if self.over_selection < 1:
            raise ValueError(f"over_selection must be >= 1, got {self.over_selection}")
        if self.partial_work and not self.deadline_s:
            raise ValueError("partial_work needs a deadline_s > 0 to decide how much work fits")

    def facts(self, cohort: int, population: int) -> PolicyFacts:
        """A round dispatches the cohort, over-selected, and steps on its first ``cohort`` arrivals."""
        return PolicyFacts(updates_per_step=cohort, tasks_per_round=min(math.ceil(cohort * self.over_selection),
                                                                       population), synchronous=True)

    def build(self) -> "SyncRounds":
        return SyncRounds(self)


class SyncRounds:
    """Waits until every task of the round has arrived or failed, then aggregates them all."""

    def __init__(self, spec: SyncPolicy):
        self.spec = spec
        self._outstanding = 0
        self._arrived: list[int] = []

    def start(self, view: ServerView) -> list[Action]:
        return [self._dispatch(view)]

    def on_event(self, event: Event, view: ServerView) -> list[Action]:
        if isinstance(event, Dispatched):
            self._outstanding += len(event.tasks)
            return []
        if isinstance(event, Arrival):
            self._outstanding -= 1
            self._arrived.append(event.task.task_id)
        elif isinstance(event, Failure):
            self._outstanding -= 1
        if self._outstanding:
            return []
        arrived, self._arrived = tuple(self._arrived), []
        return [Aggregate(arrived), self._dispatch(view)]

    def _dispatch(self, view: ServerView) -> Dispatch:
        cohort = view.clients_per_round
        count = min(math.ceil(cohort * self.spec.over_selection), view.population)
        return Dispatch(
            count=count,
            cutoff=view.now + self.spec.deadline_s if self.spec.deadline_s else None,
            keep_first=cohort if count > cohort else None,
            partial_work=self.spec.partial_work,
        )
