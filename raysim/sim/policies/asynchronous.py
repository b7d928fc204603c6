"""Asynchronous aggregation: FedAsync and FedBuff.

FedAsync (Xie et al. 2019, arXiv:1903.03934): every arrival updates the model at once,
x_t = (1 - a_t) x_{t-1} + a_t x_new with a_t = alpha * s(t - tau); expressed as a server
step on the delta rebased to the current model, x_t = x_{t-1} + a_t (x_new - x_{t-1}).
FedBuff (Nguyen et al. 2022, arXiv:2106.06639): ``concurrency`` clients train at once, the
server buffers their deltas, each scaled by s(staleness) (1/sqrt(1 + staleness) in the paper),
and takes a server step (server.lr) once ``buffer_size`` have arrived. In both, a client that
reports or fails is replaced at once, so ``concurrency`` tasks are always in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from raysim.algorithms.staleness import StalenessWeight
from raysim.sim.policies.base import Action, Aggregate, Arrival, Dispatch, Event, Failure, PolicyFacts, ServerView
from raysim.sim.policies.staleness_buffer import StalenessBuffer


@dataclass(frozen=True, kw_only=True)
class AsyncPolicy:
    """``[policy] kind = "async"``: ``mode = "fedasync"`` (alpha, staleness) or ``"fedbuff"``."""

    kind: ClassVar[str] = "async"
    mode: Literal["fedasync", "fedbuff"] = "fedbuff"
    concurrency: int = 0  # clients in flight; 0 = selection's clients per round
    alpha: float = 0.6
    buffer_size: int = 10
    staleness: StalenessWeight = field(default_factory=lambda: StalenessWeight("fedbuff"))

    def __post_init__(self) -> None:
        if self.concurrency < 0:
            raise ValueError(f"concurrency must be >= 0 (0 = selection's clients per round), got {self.concurrency}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {self.buffer_size}")

    def facts(self, cohort: int, population: int) -> PolicyFacts:
        """FedAsync mixes each arrival on its own; FedBuff steps on a full buffer."""
        fedasync = self.mode == "fedasync"
        return PolicyFacts(updates_per_step=1 if fedasync else self.buffer_size,
                           tasks_per_round=min(cohort, population), mixes_one_update=fedasync)

    def build(self) -> "AsyncAggregation":
        return AsyncAggregation(self)


class AsyncAggregation:
    def __init__(self, spec: AsyncPolicy):
        self.spec = spec
        self.buffer = StalenessBuffer(spec.staleness)

    def start(self, view: ServerView) -> list[Action]:
        return [Dispatch(count=self.spec.concurrency or view.clients_per_round)]

    def on_event(self, event: Event, view: ServerView) -> list[Action]:
        if isinstance(event, Failure):
            return [Dispatch(count=1)]
        if not isinstance(event, Arrival):
            return []
        if self.spec.mode == "fedasync":
            rate = self.spec.alpha * self.spec.staleness(view.version - event.task.base_version)
            return [Aggregate((event.task.task_id,), scales=(rate,), rebase=True), Dispatch(count=1)]
        self.buffer.add(event.task)
        if len(self.buffer) < self.spec.buffer_size:
            return [Dispatch(count=1)]
        return [self.buffer.flush(view.version), Dispatch(count=1)]
