"""Dispatch's vocabulary and rules: the kernel's task record, and the pure rules by which the
cost model decides each task's fate (arrival, dropout, going offline, lateness, over-selection,
straggling) before any training, so the executor trains only the tasks whose updates will be
used. The kernel (driver.py) plans and submits the tasks with them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from raysim.seeding import Stream, rng
from raysim.sim.cost.devices import Population, TaskTiming
from raysim.sim.kernel.parts import ClientSchedule
from raysim.sim.policies import Action, Dispatch, TaskInfo
from raysim.sim.kernel.tasks import ClientResult


@dataclass(frozen=True)
class Later:
    """Policy actions carried out at a later time: a dispatch that found no client
    available (retried when one comes online), or what follows a server step that took
    simulated time (a secure-aggregation protocol)."""

    actions: tuple[Action, ...]


@dataclass(frozen=True)
class TriggerCheck:
    """An event-triggered task's compute ended; decide whether it sends."""

    task_id: int


@dataclass
class Task:
    """One client task as the driver tracks it: its timing, fate and what it trained from."""

    info: TaskInfo
    samples: int
    download_s: float
    compute_s: float
    upload_s: float
    trained: bool
    status: str = "running"
    result: dict = field(default_factory=dict)
    trigger: float | None = None
    start_params: np.ndarray | None = None  # a start model other than a global version
    continued: bool = False  # an event-triggered client training on from its own model: no download
    seed_key: int = 0  # the dispatch number, which keys the batch order
    round: int = 0  # the round its update is for: server steps taken at dispatch, + 1
    fetched: ClientResult | None = None  # a result read before aggregation (event trigger)
    new_model: np.ndarray | None = None


SILENT_TASKS_PER_CLIENT = 50  # event trigger: suppressed updates per client before a round counts as stalled


class RunStalled(RuntimeError):
    """The policy can never aggregate again (e.g. an event trigger no update reaches)."""


def closing_time(arrivals: list[Task], action: Dispatch) -> float | None:
    """When the server stops waiting for this dispatch's tasks: at the deadline, or, with
    over-selection, once the first ``keep_first`` updates have arrived; None when it waits for all."""
    times = [action.cutoff] if action.cutoff is not None else []
    if action.keep_first is not None and len(arrivals) >= action.keep_first:
        times.append(sorted(t.info.end for t in arrivals)[action.keep_first - 1])
    return min(times) if times else None


def failure_by(failure: tuple[str, float], closing: float | None, action: Dispatch) -> tuple[str, float]:
    """A planned failure as the server sees it: a device that would drop out or go offline only
    after the server stopped waiting has by then simply not answered, so it counts as late (past
    the deadline) or excess (the cohort already arrived) at the closing time; before, such a
    failure held a deadline round open until it happened."""
    reason, at = failure
    if closing is None or at <= closing:
        return reason, at
    return ("late" if action.cutoff is not None and closing >= action.cutoff else "excess"), closing


def local_epochs(schedule: ClientSchedule, chosen: list[int], *, seed: int, key: int) -> dict[int, int]:
    """Local epochs per client; FedProx's stragglers draw theirs from {1, ..., E - 1}."""
    epochs = {c: schedule.epochs for c in chosen}
    count = round(schedule.straggler_fraction * len(chosen))
    if count:
        draw = rng(seed, Stream.STRAGGLERS, key)
        for c in sorted(int(c) for c in draw.choice(chosen, size=count, replace=False)):
            epochs[c] = int(draw.integers(1, schedule.epochs))
    return epochs


def device_failure(population: Population, client: int, task_id: int, timing: TaskTiming) -> tuple[str, float] | None:
    """Dropout (random, per task) or going offline before the task ends, whichever first."""
    dropout_at = population.dropout_time(client, task_id, timing)
    offline_at = population.profile(client).availability.online_until(timing.start)
    candidates = []
    if dropout_at is not None:
        candidates.append((dropout_at, "dropout"))
    if offline_at < timing.end:
        candidates.append((offline_at, "offline"))
    if not candidates:
        return None
    at, reason = min(candidates)
    return reason, at


def beyond_first(arrivals: list[Task], keep_first: int | None) -> tuple[list[Task], float]:
    """Over-selection: the arrivals after the first K, which end when the K-th arrives (its time)."""
    if keep_first is None or len(arrivals) <= keep_first:
        return [], 0.0
    ordered = sorted(arrivals, key=lambda t: (t.info.end, t.info.task_id))
    return ordered[keep_first:], ordered[keep_first - 1].info.end
