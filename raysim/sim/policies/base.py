"""The vocabulary between the driver and a round policy: events in, actions out.

A policy is a plain object; it never sees Ray, actors or models. The driver pops an event off
the simulated clock, tells the policy, and carries out the actions it returns, in order:

    actions = policy.start(view)
    while the run goes on:
        event = clock.pop()
        actions = policy.on_event(event, view)

Events: ``Dispatched`` (the tasks a ``Dispatch`` created), ``Arrival`` (an update reached the
server), ``Failure`` (a task will deliver nothing: dropout, offline, late, excess), ``Suppressed``
(an event-triggered client chose not to send), ``Timer`` (a time the policy asked for).

Actions: ``Dispatch`` (start clients now on the newest model), ``Aggregate`` (apply arrived
updates, optionally scaled, e.g. by staleness), ``Discard`` (drop arrived updates),
``SetTimer``.

Example, a policy that applies every update as it arrives and keeps two clients busy::

    class EveryArrival:
        def start(self, view):
            return [Dispatch(count=2)]

        def on_event(self, event, view):
            if isinstance(event, Arrival | Failure):
                updates = (event.task.task_id,) if isinstance(event, Arrival) else ()
                return [Aggregate(updates), Dispatch(count=1)]
            return []
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Protocol

FailureReason = Literal["dropout", "offline", "late", "excess", "straggler", "lost"]


@dataclass(frozen=True)
class TaskInfo:
    """One client task as the policy sees it: who, from which model version, and when."""

    task_id: int
    client_id: int
    base_version: int
    start: float
    end: float
    epochs: int


@dataclass(frozen=True)
class Dispatched:
    tasks: tuple[TaskInfo, ...]


@dataclass(frozen=True)
class Arrival:
    task: TaskInfo


@dataclass(frozen=True)
class Failure:
    task: TaskInfo
    reason: FailureReason


@dataclass(frozen=True)
class Suppressed:
    """An event-triggered task whose local change stayed under the threshold: no message sent."""

    task: TaskInfo


@dataclass(frozen=True)
class Timer:
    tag: str


Event = Dispatched | Arrival | Failure | Suppressed | Timer


@dataclass(frozen=True)
class Dispatch:
    """Start ``count`` idle, online clients now on the newest model.

    ``cutoff``: a simulated time after which arrivals are late (a deadline); ``keep_first``: of
    the tasks that make the cutoff, only the first K to arrive are used (over-selection);
    ``partial_work``: a client that cannot finish all epochs by the cutoff runs as many whole
    epochs as fit (FedProx), instead of being late. The driver knows every duration up front,
    so tasks that would be late or excess are never trained.

    ``clients`` names the clients to start instead of sampling ``count`` of them (they must be
    idle). ``trigger`` makes the tasks event-triggered: a client trains from its own local
    model and, when its compute ends, sends only if the norm of its change since it last
    synchronised exceeds ``trigger``; otherwise the policy hears ``Suppressed`` and the
    message is saved.
    """

    count: int = 0
    cutoff: float | None = None
    keep_first: int | None = None
    partial_work: bool = False
    clients: tuple[int, ...] = ()
    trigger: float | None = None


@dataclass(frozen=True)
class Aggregate:
    """Apply these arrived updates to the global model as one server step.

    The strategy computes sum_i w_i s_i d_i / sum_i w_i over the updates, with w_i its
    weighting (samples or uniform) and s_i the policy's ``scales`` (e.g. staleness weights;
    default 1). With ``rebase`` each delta is first re-expressed against the current model,
    d_i <- (x_base_i + d_i) - x_now, which turns a mixing rule like FedAsync's into a step.
    An empty ``task_ids`` still closes a round, leaving the model unchanged.
    """

    task_ids: tuple[int, ...]
    scales: tuple[float, ...] | None = None
    rebase: bool = False


@dataclass(frozen=True)
class Discard:
    """Throw away arrived updates (e.g. too stale); they are recorded as ``discarded``."""

    task_ids: tuple[int, ...]


@dataclass(frozen=True)
class SetTimer:
    at: float
    tag: str


Action = Dispatch | Aggregate | Discard | SetTimer


def postponed(action: Action, by: float) -> Action:
    """The action as if decided ``by`` seconds later: deadlines and timers move with it (a server
    step that takes simulated time, e.g. a secure-aggregation protocol, delays what follows)."""
    if isinstance(action, Dispatch) and action.cutoff is not None:
        return replace(action, cutoff=action.cutoff + by)
    if isinstance(action, SetTimer):
        return replace(action, at=action.at + by)
    return action


@dataclass(frozen=True)
class ServerView:
    """What a policy may read about the server when it decides."""

    now: float
    version: int
    clients_per_round: int
    population: int


@dataclass(frozen=True)
class PolicyFacts:
    """What the rest of the simulator may count on from a policy, answered by its settings
    (``facts(cohort, population)``) so that no rule elsewhere compares kind strings.

    ``updates_per_step``: the most client updates one server step combines (robust rules and
    exact Shapley values are sized by it); ``tasks_per_round``: the most tasks a round dispatches
    (secure aggregation sizes its masks by it); ``mixes_one_update``: each arrival is mixed into
    the model on its own as a plain step (FedAsync, event triggering), so no robust rule or
    stateful server optimizer applies; ``synchronous``: a round waits for its own cohort and
    nothing arrives stale (what SCAFFOLD's controls, privacy accounting and the server-less
    topologies assume); ``client_decides_sending``: a client trains from its own local model and
    decides after training whether to send (event triggering).
    """

    updates_per_step: int
    tasks_per_round: int
    mixes_one_update: bool = False
    synchronous: bool = False
    client_decides_sending: bool = False


def facts_of(settings: object, *, cohort: int, population: int) -> PolicyFacts:
    """A policy's facts: its settings' own answer, or for a user's policy without ``facts`` the
    assumptions that restrict nothing it may do (a step of up to the cohort's updates, a round of
    the cohort, over-selected by its ``over_selection`` if it has one; not synchronous)."""
    answer = getattr(settings, "facts", None)
    if callable(answer):
        return answer(cohort, population)
    over = getattr(settings, "over_selection", 1.0)
    return PolicyFacts(updates_per_step=cohort, tasks_per_round=min(math.ceil(cohort * over), population))


class Policy(Protocol):
    """Decides when clients start and when their updates are aggregated."""

    def start(self, view: ServerView) -> list[Action]:
        """Actions at simulated time 0."""

    def on_event(self, event: Event, view: ServerView) -> list[Action]:
        """Actions in answer to one event."""
