"""Dispatch, the driver's task bookkeeping: the cost model decides each task's fate (arrival,
dropout, going offline, lateness, over-selection, straggling) before any training, so the
executor trains only the tasks whose updates will be used.

``Dispatching`` is a part of ``Driver`` (driver.py), kept apart so this concern reads alone; it
uses the driver's clock, population, state, executor, client state and task table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from raysim.seeding import Stream, rng
from raysim.sim.policies import Action, Arrival, Dispatch, Dispatched, Failure, Suppressed, TaskInfo
from raysim.sim.selection.protocol import SelectionView
from raysim.sim.selection.uniform import idle_online, is_idle_online, next_online
from raysim.sim.tasks import ClientResult, TrainTask

if TYPE_CHECKING:
    from raysim.sim.records import RoundReport


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


class Dispatching:
    """The driver's dispatch step and its task table (see the module's docstring)."""

    def _dispatch(self, action: Dispatch) -> list[RoundReport]:
        now = self.clock.now
        self._dispatches += 1
        chosen = self._named(action.clients) if action.clients else self._select(action.count, key=self._dispatches)
        if not chosen:
            self.clock.schedule(next_online(self.population, busy=self.busy, now=now), Later((action,)))
            return []
        self.selection.dispatched(chosen, round_number=self.round + 1)
        epochs = self._epochs(chosen, key=self._dispatches)
        planned = [self._plan_task(client, now, epochs[client], action) for client in chosen]
        created = [task for task, _ in planned]
        for task in created:
            self.tasks[task.info.task_id] = task
            self.busy.add(task.info.client_id)
        arrivals = [task for task, failure in planned if failure is None]
        closing = closing_time(arrivals, action)
        for task, failure in planned:
            if failure is not None:
                self._fail(task, *failure_by(failure, closing, action))
        self._apply_keep_first(arrivals, action.keep_first)
        trained = [t for t in arrivals if t.status == "running"]
        for task in trained:
            task.trained = True
            if task.trigger is None:
                self.clock.schedule(task.info.end, Arrival(task.info))
            else:
                self.clock.schedule(task.info.start + task.download_s + task.compute_s, TriggerCheck(task.info.task_id))
        self._submit([t for t in trained if t.start_params is None], self.state.version, self.state.params)
        for task in trained:
            if task.start_params is not None:  # its own start model: a one-off "version" keyed by the task
                self._submit([task], -1 - task.info.task_id, task.start_params)
        return self._execute(self.policy.on_event(Dispatched(tuple(t.info for t in created)), self.view()))

    def _epochs(self, chosen: list[int], *, key: int) -> dict[int, int]:
        """Local epochs per client; FedProx's stragglers draw theirs from {1, ..., E - 1}."""
        client = self.schedule
        epochs = {c: client.epochs for c in chosen}
        count = round(client.straggler_fraction * len(chosen))
        if count:
            draw = rng(self.seed, Stream.STRAGGLERS, key)
            for c in sorted(int(c) for c in draw.choice(chosen, size=count, replace=False)):
                epochs[c] = int(draw.integers(1, client.epochs))
        return epochs

    def _submit(self, tasks: list[Task], key: int, params: np.ndarray) -> None:
        """Sends ``tasks`` to the executor from model ``key`` (``params``), with the strategy's
        broadcast of that moment (kept with the base, so a resumed run sends the same) and each
        client's own state from the store."""
        if tasks:
            self.bases.setdefault(key, params)
            if key not in self.broadcasts:
                share = getattr(self.strategy, "broadcast", None)
                self.broadcasts[key] = dict(share(self.state.strategy_state)) if share is not None else {}
            self.executor.submit(
                key, params if self.channel is None else self.channel.broadcast(params),
                [TrainTask(t.info.task_id, t.info.client_id, t.seed_key, t.info.epochs, round=t.round,
                           state=self.clients.algorithm_state(t.info.client_id), server=self.broadcasts[key])
                 for t in tasks],
                [t.samples * t.info.epochs for t in tasks],
            )

    def _plan_task(self, client: int, now: float, epochs: int, action: Dispatch) -> tuple[Task, tuple[str, float] | None]:
        """A client's task with its timing, and how and when it will fail, if it will (the
        failure is scheduled by ``_dispatch`` once the round's closing time is known)."""
        samples = int(self.sizes[client])
        timing = self.population.timing(client, start=now, samples=samples, epochs=epochs,
                                        model_bytes=self.download_bytes, update_bytes=self.upload_bytes)
        local = self.local_models.pop(client, None) if action.trigger is not None else None
        if local is not None:  # keeps training its own model: nothing to download
            timing = replace(timing, download_s=0.0)
        elif action.trigger is not None:
            self.anchors[client] = (self.state.version, self.state.params)
        if action.cutoff is not None and timing.end > action.cutoff and action.partial_work:
            per_epoch = timing.compute_s / epochs
            fit = math.floor((action.cutoff - now - timing.download_s - timing.upload_s) / per_epoch) if per_epoch else epochs
            if fit >= 1:
                epochs = min(fit, epochs)
                timing = self.population.timing(client, start=now, samples=samples, epochs=epochs,
                                                model_bytes=self.download_bytes, update_bytes=self.upload_bytes)
        if self.links is not None:  # broker, ledger: the transfers go through the network's nodes
            timing = self.links.timing(client, timing, model_bytes=self.download_bytes,
                                       update_bytes=self.upload_bytes, download=local is None)
        task_id = self._task_counter
        self._task_counter += 1
        base_version = self.anchors[client][0] if action.trigger is not None else self.state.version
        info = TaskInfo(task_id=task_id, client_id=client, base_version=base_version,
                        start=now, end=timing.end, epochs=epochs)
        if local is None:
            local = self.clients.start(self.state.params, client)
        task = Task(info=info, samples=samples, download_s=timing.download_s, compute_s=timing.compute_s,
                     upload_s=timing.upload_s, trained=False, trigger=action.trigger, start_params=local,
                     continued=timing.download_s == 0.0, seed_key=self._dispatches, round=self.round + 1)
        failure = self._failure(client, task_id, timing)
        if failure is None and action.cutoff is not None and timing.end > action.cutoff:
            failure = "late", action.cutoff
        elif failure is None and epochs < self.schedule.epochs and self.schedule.drop_stragglers:
            failure = "straggler", timing.end
        return task, failure

    def _failure(self, client: int, task_id: int, timing) -> tuple[str, float] | None:
        """Dropout (random, per task) or going offline before the task ends, whichever first."""
        dropout_at = self.population.dropout_time(client, task_id, timing)
        offline_at = self.population.profile(client).availability.online_until(timing.start)
        candidates = []
        if dropout_at is not None:
            candidates.append((dropout_at, "dropout"))
        if offline_at < timing.end:
            candidates.append((offline_at, "offline"))
        if not candidates:
            return None
        at, reason = min(candidates)
        return reason, at

    def _apply_keep_first(self, arrivals: list[Task], keep_first: int | None) -> None:
        """Over-selection: only the first K arrivals are used; the rest end when the K-th arrives."""
        if keep_first is None or len(arrivals) <= keep_first:
            return
        ordered = sorted(arrivals, key=lambda t: (t.info.end, t.info.task_id))
        closing = ordered[keep_first - 1].info.end
        for task in ordered[keep_first:]:
            self._fail(task, "excess", closing)

    def _fail(self, task: Task, reason: str, at: float) -> None:
        task.status = reason
        self.clock.schedule(max(at, task.info.start), Failure(task.info, reason))

    def _select(self, count: int, *, key: int) -> list[int]:
        """The selection stage's ``count`` clients (sim/selection/), drawing from (seed, dispatch number)."""
        return self.selection.choose(count, self._selection_view(), rng(self.seed, Stream.SELECTION, key))

    def _selection_view(self) -> SelectionView:
        population, now, busy = self.population, self.clock.now, frozenset(self.busy)

        def expected_duration_s(client: int) -> float:
            timing = population.timing(client, start=now, samples=int(self.sizes[client]), epochs=self.schedule.epochs,
                                       model_bytes=self.download_bytes, update_bytes=self.upload_bytes)
            return timing.end - now

        return SelectionView(round=self.round + 1, now=now, num_clients=population.num_clients, examples=self.sizes,
                             busy=busy, records=self.selection.records,
                             available=lambda c: is_idle_online(population, c, busy=busy, now=now),
                             expected_duration_s=expected_duration_s)

    def _named(self, clients: tuple[int, ...]) -> list[int]:
        """The policy's chosen clients that are idle and online now."""
        return sorted(idle_online(self.population, set(clients), busy=self.busy, now=self.clock.now))

    def _start_of(self, task: Task) -> np.ndarray:
        return task.start_params if task.start_params is not None else self.bases[task.info.base_version]

    def _check_trigger(self, task: Task) -> Arrival | Suppressed | None:
        """Event trigger: send if ||model - model at last sync|| > threshold, else keep training."""
        result = self._finished(task)  # the client's compute ended: it keeps its state, sent or not
        if result is None:  # lost with its worker: the server hears nothing, as for a dropout
            return Failure(task.info, "lost")
        start = self._start_of(task)
        task.new_model = start.astype(np.float64) + result.delta
        anchor = self.anchors[task.info.client_id][1]
        if float(np.linalg.norm(task.new_model - anchor)) > task.trigger:
            self.clock.schedule(self.clock.now + task.upload_s, Arrival(replace(task.info, end=self.clock.now + task.upload_s)))
            return None
        self.local_models[task.info.client_id] = task.new_model.astype(np.float32)
        self._messages_saved += 1
        if self._messages_saved > SILENT_TASKS_PER_CLIENT * len(self.sizes):
            raise RunStalled(
                f"round {self.round + 1}: {self._messages_saved} local updates in a row stayed under "
                f"policy.threshold = {task.trigger:g} and none was sent, so no round can end: lower policy.threshold"
            )
        task.status = "suppressed"
        self.busy.discard(task.info.client_id)
        self._undecided_rows.append(self._client_row(task, applied_round=None, staleness=None))
        del self.tasks[task.info.task_id]
        return Suppressed(task.info)

