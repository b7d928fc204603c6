"""The driver: pops events off the simulated clock, asks the policy, carries out its actions.

    pop event -> tell policy -> dispatch (cost model decides each task's fate up front,
    the executor trains only the tasks that will be used) -> aggregate (strategy) -> record

The driver owns the global model, the clock and the bookkeeping; it never measures how long
real work took to decide anything. Each call to :meth:`Driver.advance` runs until at least one
aggregation happened and returns its reports, so a caller (the CLI, or a Ray actor wrapper)
can write results and show progress round by round. It holds the model only as a numpy
vector and never imports torch: evaluation is sent to the workers (``evaluation.py``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from raysim.algorithms.personal import PersonalLayers, local_mask
from raysim.models.layout import ParamLayout
from raysim.scenario.combinations import max_clients_per_round
from raysim.scenario.composition import attackers, make_strategy
from raysim.sim import checkpoint
from raysim.sim.clock import SimClock
from raysim.sim.evaluation import central_slices, summarise
from raysim.sim.evaluation import holdout_rows, holdout_slices
from raysim.sim.policies import (
    Action,
    Aggregate,
    Arrival,
    Discard,
    Dispatch,
    Dispatched,
    Failure,
    ServerView,
    SetTimer,
    Suppressed,
    TaskInfo,
    Timer,
    postponed,
)
from raysim.algorithms.scaffold import correction, update_controls
from raysim.algorithms.strategy import Update
from raysim.privacy.hygiene import check_update
from raysim.privacy.stage import PrivacyStage
from raysim.scenario.sections import Scenario
from raysim.seeding import Stream, rng
from raysim.sim.executor import ClientLost, Executor
from raysim.sim.selection import idle_online, next_online, sample_clients
from raysim.sim.server_step import server_step
from raysim.sim.system import Population
from raysim.sim.tasks import ClientResult, Shards, TrainTask


@dataclass(frozen=True)
class _Later:
    """Internal: policy actions carried out at a later time: a dispatch that found no client
    available (retried when one comes online), or what follows a server step that took
    simulated time (a secure-aggregation protocol)."""

    actions: tuple[Action, ...]


@dataclass(frozen=True)
class _TriggerCheck:
    """Internal: an event-triggered task's compute ended; decide whether it sends."""

    task_id: int


@dataclass
class _Task:
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
    fetched: ClientResult | None = None  # a result read before aggregation (event trigger)
    new_model: np.ndarray | None = None


SILENT_TASKS_PER_CLIENT = 50  # event trigger: suppressed updates per client before a round counts as stalled


class RunStalled(RuntimeError):
    """The policy can never aggregate again (e.g. an event trigger no update reaches)."""


@dataclass(frozen=True)
class RoundReport:
    """One aggregation: a row for rounds.parquet, the client rows decided since the last one,
    and per-client evaluations (evaluation.parquet) when clients hold out data."""

    round_row: dict
    client_rows: list[dict]
    eval_rows: list[dict] = field(default_factory=list)


class Driver:
    def __init__(
        self,
        scenario: Scenario,
        *,
        initial_params: np.ndarray,
        layout: ParamLayout,
        num_classes: int,
        client_sizes: np.ndarray,
        test_size: int,
        executor_factory: Callable[[], Executor],
        holdout: Shards | None = None,
    ):
        self.scenario = scenario
        self.sizes = np.asarray(client_sizes)
        self.population = Population(scenario.system, len(self.sizes), scenario.run.seed)
        self.policy = scenario.policy.build()
        self.strategy = make_strategy(scenario)
        self.attackers = set(attackers(scenario))
        self._stopped = False  # e.g. the privacy budget is spent
        self.attack = scenario.attack.build(num_classes)
        self.layout = layout
        self.state = self.strategy.init(initial_params)
        self.model_bytes = self.layout.nbytes
        prefixes = scenario.personal.local_layers
        self.personal = PersonalLayers(local_mask(self.layout, prefixes)) if prefixes else None
        # what crosses the (simulated) network: the body only, when heads stay on the clients
        self.exchange_bytes = round(self.model_bytes * (self.personal.body_fraction if self.personal else 1.0))
        self.privacy = (PrivacyStage(scenario.privacy, seed=scenario.run.seed, population=len(self.sizes),
                                     cohort=scenario.clients_per_round, drawn=max_clients_per_round(scenario),
                                     link=self.population.link, update_bytes=self.exchange_bytes,
                                     num_params=self.layout.size) if scenario.privacy.active else None)
        # what one client uploads: the update, or its masked / encrypted form
        self.upload_bytes = self.privacy.upload_bytes if self.privacy else self.exchange_bytes
        self.holdout = holdout
        self.scaffold = scenario.server.strategy == "scaffold"
        self.server_control = np.zeros(self.layout.size) if self.scaffold else None
        self.client_controls: dict[int, np.ndarray] = {}  # SCAFFOLD's c_i, kept across rounds
        # SCAFFOLD's c moves by each client's share of the population's weight (scaffold.py)
        self.control_shares = self._population_shares() if self.scaffold else None
        self.test_slices = central_slices(test_size)
        self.executor = executor_factory()
        self.clock = SimClock()
        self.tasks: dict[int, _Task] = {}
        self.busy: set[int] = set()
        self.bases: dict[int, np.ndarray] = {0: self.state.params}
        self.round = 0
        self._dispatches = 0
        self._task_counter = 0
        self._started = False
        self._undecided_rows: list[dict] = []
        self.local_models: dict[int, np.ndarray] = {}  # event-triggered clients' unsent models
        self.anchors: dict[int, tuple[int, np.ndarray]] = {}  # (version, model) each last synced to
        self._messages_saved = 0
        self._round_started_wall = time.perf_counter()
        self._run_started_wall = time.perf_counter()

    # -- the loop ---------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        limit = self.scenario.run.sim_time_limit
        return self._stopped or self.round >= self.scenario.run.rounds or bool(limit and self.clock.now >= limit)

    def view(self) -> ServerView:
        return ServerView(
            now=self.clock.now, version=self.state.version,
            clients_per_round=self.scenario.clients_per_round, population=len(self.sizes),
        )

    def advance(self) -> list[RoundReport]:
        """Runs the simulation until the next aggregation(s); [] once the run is finished."""
        reports: list[RoundReport] = []
        if not self._started:
            self._started = True
            reports += self._execute(self.policy.start(self.view()))
        while not reports and not self.finished:
            if not len(self.clock):
                raise RuntimeError(
                    f"the {type(self.policy).__name__} policy has no work scheduled at round {self.round} "
                    f"of {self.scenario.run.rounds}: nothing left to simulate"
                )
            _, event = self.clock.pop()
            if isinstance(event, _Later):
                reports += self._execute(list(event.actions))
                continue
            if isinstance(event, _TriggerCheck):
                event = self._check_trigger(self.tasks[event.task_id])
                if event is None:
                    continue
            if isinstance(event, Arrival | Failure):
                self._settle(event)
            reports += self._execute(self.policy.on_event(event, self.view()))
        if self.finished:
            self._abandon_in_flight()
        return reports

    def _execute(self, actions: list[Action]) -> list[RoundReport]:
        reports = []
        for index, action in enumerate(actions):
            if self.finished:
                break
            if isinstance(action, Dispatch):
                reports += self._dispatch(action)
            elif isinstance(action, Aggregate):
                report = self._aggregate(action)
                if report is None:  # the privacy budget would be crossed: not applied, the run stops
                    break
                reports.append(report)
                busy = report.round_row.get("protocol_sim_s", 0.0)
                if busy and actions[index + 1:]:  # the protocol holds the server: the rest waits
                    later = tuple(postponed(a, busy) for a in actions[index + 1:])
                    self.clock.schedule(self.clock.now + busy, _Later(later))
                    break
            elif isinstance(action, Discard):
                self._discard(action)
            elif isinstance(action, SetTimer):
                self.clock.schedule(action.at, Timer(action.tag))
            else:
                raise TypeError(f"unknown policy action {action!r}")
        return reports

    # -- dispatch: the cost model decides each task's fate before any training ----------------

    def _dispatch(self, action: Dispatch) -> list[RoundReport]:
        now = self.clock.now
        self._dispatches += 1
        chosen = self._named(action.clients) if action.clients else self._select(action.count, key=self._dispatches)
        if not chosen:
            self.clock.schedule(next_online(self.population, busy=self.busy, now=now), _Later((action,)))
            return []
        epochs = self._epochs(chosen, key=self._dispatches)
        created = [self._plan_task(client, now, epochs[client], action) for client in chosen]
        for task in created:
            self.tasks[task.info.task_id] = task
            self.busy.add(task.info.client_id)
        arrivals = [t for t in created if t.status == "running"]
        self._apply_keep_first(arrivals, action.keep_first)
        trained = [t for t in arrivals if t.status == "running"]
        for task in trained:
            task.trained = True
            if task.trigger is None:
                self.clock.schedule(task.info.end, Arrival(task.info))
            else:
                self.clock.schedule(task.info.start + task.download_s + task.compute_s, _TriggerCheck(task.info.task_id))
        self._submit([t for t in trained if t.start_params is None], self.state.version, self.state.params)
        for task in trained:
            if task.start_params is not None:  # its own start model: a one-off "version" keyed by the task
                self._submit([task], -1 - task.info.task_id, task.start_params)
        return self._execute(self.policy.on_event(Dispatched(tuple(t.info for t in created)), self.view()))

    def _epochs(self, chosen: list[int], *, key: int) -> dict[int, int]:
        """Local epochs per client; FedProx's stragglers draw theirs from {1, ..., E - 1}."""
        client = self.scenario.client
        epochs = {c: client.epochs for c in chosen}
        count = round(client.straggler_fraction * len(chosen))
        if count:
            draw = rng(self.scenario.run.seed, Stream.STRAGGLERS, key)
            for c in sorted(int(c) for c in draw.choice(chosen, size=count, replace=False)):
                epochs[c] = int(draw.integers(1, client.epochs))
        return epochs

    def _submit(self, tasks: list[_Task], key: int, params: np.ndarray) -> None:
        if tasks:
            self.bases.setdefault(key, params)
            self.executor.submit(
                key, params,
                [TrainTask(t.info.task_id, t.info.client_id, t.seed_key, t.info.epochs,
                           self._scaffold_correction(t.info.client_id)) for t in tasks],
                [t.samples * t.info.epochs for t in tasks],
            )

    def _scaffold_correction(self, client: int) -> np.ndarray | None:
        if not self.scaffold:
            return None
        own = self.client_controls.get(client, np.zeros_like(self.server_control))
        trainable = self.layout.num_trainable
        return correction(self.server_control, own)[:trainable].astype(np.float32)

    def _plan_task(self, client: int, now: float, epochs: int, action: Dispatch) -> _Task:
        samples = int(self.sizes[client])
        timing = self.population.timing(client, start=now, samples=samples, epochs=epochs,
                                        model_bytes=self.exchange_bytes, update_bytes=self.upload_bytes)
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
                                                model_bytes=self.exchange_bytes, update_bytes=self.upload_bytes)
        task_id = self._task_counter
        self._task_counter += 1
        base_version = self.anchors[client][0] if action.trigger is not None else self.state.version
        info = TaskInfo(task_id=task_id, client_id=client, base_version=base_version,
                        start=now, end=timing.end, epochs=epochs)
        if local is None and self.personal is not None and client in self.personal.heads:
            local = self.personal.start(self.state.params, client)
        task = _Task(info=info, samples=samples, download_s=timing.download_s, compute_s=timing.compute_s,
                     upload_s=timing.upload_s, trained=False, trigger=action.trigger, start_params=local,
                     continued=timing.download_s == 0.0, seed_key=self._dispatches)
        failure = self._failure(client, task_id, timing)
        if failure is not None:
            reason, at = failure
            self._fail(task, reason, at)
        elif action.cutoff is not None and timing.end > action.cutoff:
            self._fail(task, "late", action.cutoff)
        elif epochs < self.scenario.client.epochs and self.scenario.server.drop_stragglers:
            self._fail(task, "straggler", timing.end)
        return task

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

    def _apply_keep_first(self, arrivals: list[_Task], keep_first: int | None) -> None:
        """Over-selection: only the first K arrivals are used; the rest end when the K-th arrives."""
        if keep_first is None or len(arrivals) <= keep_first:
            return
        ordered = sorted(arrivals, key=lambda t: (t.info.end, t.info.task_id))
        closing = ordered[keep_first - 1].info.end
        for task in ordered[keep_first:]:
            self._fail(task, "excess", closing)

    def _fail(self, task: _Task, reason: str, at: float) -> None:
        task.status = reason
        self.clock.schedule(max(at, task.info.start), Failure(task.info, reason))

    def _select(self, count: int, *, key: int) -> list[int]:
        """Uniformly samples ``count`` idle, online clients, seeded by (seed, dispatch number)."""
        return sample_clients(self.population, count, busy=self.busy, now=self.clock.now,
                              draw=rng(self.scenario.run.seed, Stream.SELECTION, key))

    def _named(self, clients: tuple[int, ...]) -> list[int]:
        """The policy's chosen clients that are idle and online now."""
        return sorted(idle_online(self.population, set(clients), busy=self.busy, now=self.clock.now))

    def _start_of(self, task: _Task) -> np.ndarray:
        return task.start_params if task.start_params is not None else self.bases[task.info.base_version]

    def _check_trigger(self, task: _Task) -> Arrival | Suppressed | None:
        """Event trigger: send if ||model - model at last sync|| > threshold, else keep training."""
        result = task.fetched = self._fetch(task)
        if result is None:  # lost with its worker: the server hears nothing, as for a dropout
            return Failure(task.info, "lost")
        start = self._start_of(task)
        task.new_model = start.astype(np.float64) + result.delta
        anchor = self.anchors[task.info.client_id][1]
        task.result.update(steps=result.steps, train_loss=result.mean_loss, wall_train_s=result.wall_s)
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

    # -- settle and aggregate ------------------------------------------------------------------

    def _settle(self, event: Arrival | Failure) -> None:
        """A task's fate reached the server: free its client and record failures now."""
        task = self.tasks[event.task.task_id]
        self.busy.discard(task.info.client_id)
        if isinstance(event, Failure):
            self._undecided_rows.append(self._client_row(task, applied_round=None, staleness=None))
            del self.tasks[task.info.task_id]

    def _fetch(self, task: _Task) -> ClientResult | None:
        """The task's result, or None (status "lost") when its worker died and the failure policy
        (``resources.actor_failure = "drop"``) drops the work."""
        try:
            return self.executor.result(task.info.task_id)
        except ClientLost:
            task.status = "lost"
            return None

    def _delta_for_server(self, task: _Task, result: ClientResult, *, rebase: bool) -> np.ndarray:
        """What the server aggregates for a task: the client's delta as sent (an attacker's is
        tampered with), re-expressed against the current model for mixing rules, heads removed."""
        delta = result.delta
        if task.new_model is not None:  # event-triggered: the change since the client last synced
            delta = task.new_model - self.anchors[task.info.client_id][1]
        if task.info.client_id in self.attackers and self.attack.target == "update":
            delta = self.attack(delta, rng=rng(self.scenario.run.seed, Stream.ATTACK, task.info.task_id))
        if rebase:
            start = self.anchors[task.info.client_id][1] if task.trigger is not None else self.bases[task.info.base_version]
            delta = (start.astype(np.float64) + delta) - self.state.params
        if self.personal is not None:
            trained = self._start_of(task).astype(np.float64) + result.delta
            delta = self.personal.absorb(task.info.client_id, trained, delta)
        return delta

    def _discard(self, action: Discard) -> None:
        self.executor.forget(action.task_ids)
        for task_id in action.task_ids:
            task = self.tasks.pop(task_id)
            task.status = "discarded"
            self._undecided_rows.append(self._client_row(task, applied_round=None, staleness=None))

    def _aggregate(self, action: Aggregate) -> RoundReport | None:
        """One server step; None, with the run stopped, when it would cross the privacy budget."""
        if self.privacy is not None and self.privacy.would_exceed_budget(
                [self.tasks[t].info.client_id for t in action.task_ids]):
            self._stopped = True
            return None
        scales = action.scales or (1.0,) * len(action.task_ids)
        updates, rows = [], []
        for task_id, scale in zip(action.task_ids, scales):
            task = self.tasks[task_id]
            result = task.fetched or self._fetch(task)
            reason = None if result is None else check_update(result.delta, self.state.params.size)
            if result is None or reason is not None:  # lost with its worker, or never let it near the model
                if reason is not None:
                    task.status = "rejected"
                    task.result["rejected_because"] = reason
                rows.append((task, None))
                del self.tasks[task_id]
                continue
            delta = self._delta_for_server(task, result, rebase=action.rebase)
            task.status = "applied"
            task.result.update(steps=result.steps, train_loss=result.mean_loss, wall_train_s=result.wall_s)
            updates.append(Update(client_id=task.info.client_id, num_samples=result.num_samples,
                                  steps=result.steps, delta=delta, scale=scale))
            rows.append((task, self.state.version - task.info.base_version))
            del self.tasks[task_id]
        if self.scaffold:
            self._update_controls(updates)
        dropped = [r["client_id"] for r in self._undecided_rows if r["status"] in ("dropout", "offline")]
        self.state, metrics = server_step(self.strategy, self.state, updates, privacy=self.privacy,
                                          round_number=self.round + 1, dropped=dropped)
        self.round += 1
        self._release_bases()
        client_rows = self._undecided_rows + [self._client_row(t, applied_round=self.round, staleness=s) for t, s in rows]
        self._undecided_rows = []
        round_row = self._round_row(updates, client_rows, metrics)
        eval_rows = []
        if self.holdout is not None and self._evaluating():
            owners, slices = holdout_slices(self.holdout, self.personal)
            eval_rows = holdout_rows(owners, slices, self.executor.evaluate(self.state.params, slices), self.round)
        if eval_rows:
            held = np.array([r["samples"] for r in eval_rows], dtype=float)
            for kind in ("global", "personal"):
                accuracy = np.array([r[f"{kind}_accuracy"] for r in eval_rows])
                round_row[f"holdout_{kind}_accuracy"] = float((accuracy * held).sum() / held.sum())
        return RoundReport(round_row, client_rows, eval_rows)

    def _evaluating(self) -> bool:
        return self.round % self.scenario.run.eval_every == 0 or self.finished

    def _update_controls(self, updates: list[Update]) -> None:
        """SCAFFOLD option II: c_i += dc_i for the round's clients, c += sum s_i dc_i."""
        self.server_control, self.client_controls = update_controls(
            self.server_control, self.client_controls, deltas={u.client_id: (u.delta, u.steps) for u in updates},
            shares=self.control_shares, lr=self.strategy.client_sgd.lr, trainable=self.layout.num_trainable)

    def _population_shares(self) -> np.ndarray:
        """Each client's weight over the whole population's (1/N for uniform weighting)."""
        weights = self.strategy.weights_of(range(len(self.sizes)), self.sizes)
        return weights / weights.sum()

    def _round_row(self, updates: list[Update], client_rows: list[dict], metrics: dict) -> dict:
        accuracy = loss = float("nan")
        if self._evaluating():
            accuracy, loss = summarise(self.executor.evaluate(self.state.params, self.test_slices))
        wall = time.perf_counter()
        samples = sum(u.num_samples for u in updates)
        applied = [r for r in client_rows if r["status"] == "applied"]
        row = {
            "round": self.round,
            "version": self.state.version,
            "sim_time": self.clock.now + metrics.get("protocol_sim_s", 0.0),  # the step's end
            "wall_time": wall - self._run_started_wall,
            "round_wall_s": wall - self._round_started_wall,
            "clients": len(updates),
            "samples": samples,
            "test_accuracy": accuracy,
            "test_loss": loss,
            "train_loss": (sum(r["train_loss"] * r["samples"] for r in applied) / samples) if samples else float("nan"),
            "bytes_down": int(sum(r["bytes_down"] for r in client_rows)),
            "bytes_up": int(sum(r["bytes_up"] for r in client_rows)),
            "mean_staleness": float(np.mean([r["staleness"] for r in applied])) if applied else float("nan"),
            "messages_saved": self._messages_saved,
            **{f"failed_{reason}": sum(r["status"] == reason for r in client_rows)
               for reason in ("dropout", "offline", "late", "excess", "straggler", "rejected", "lost")},
            **metrics,
        }
        self._round_started_wall = wall
        self._messages_saved = 0
        return row

    def _client_row(self, task: _Task, *, applied_round: int | None, staleness: int | None) -> dict:
        info = task.info
        delivered = task.status in ("applied", "rejected")
        return {
            "round": applied_round if applied_round is not None else self.round + 1,
            "rejected_because": task.result.get("rejected_because", ""),
            "task_id": info.task_id,
            "client_id": info.client_id,
            "status": task.status,
            "base_version": info.base_version,
            "staleness": staleness if staleness is not None else -1,
            "samples": task.samples,
            "epochs": info.epochs,
            "straggler": info.epochs < self.scenario.client.epochs,  # partial work accepted
            "attacker": info.client_id in self.attackers,
            "steps": task.result.get("steps", 0),
            "train_loss": task.result.get("train_loss", float("nan")),
            "start_time": info.start,
            "end_time": info.end,
            "download_s": task.download_s,
            "compute_s": task.compute_s,
            "upload_s": task.upload_s,
            "wall_train_s": task.result.get("wall_train_s", float("nan")),
            "bytes_down": 0 if task.continued else self.exchange_bytes,
            "bytes_up": self.upload_bytes if delivered else 0,
        }

    def _release_bases(self) -> None:
        needed = {t.info.base_version if t.start_params is None else -1 - t.info.task_id
                  for t in self.tasks.values() if t.status == "running"}
        needed.add(self.state.version)
        for version in list(self.bases):
            if version not in needed:
                del self.bases[version]

    def _abandon_in_flight(self) -> None:
        running = [t for t in self.tasks.values() if t.status == "running" and t.trained]
        self.executor.forget([t.info.task_id for t in running])
        for task in running:
            task.status = "unfinished"

    def close(self) -> None:
        self.executor.shutdown()

    # -- checkpoints: everything that evolves, so a resumed run ends exactly as an uninterrupted one

    _CHECKPOINTED = (
        "state", "clock", "policy", "tasks", "busy", "bases", "round", "_dispatches", "_task_counter", "_started",
        "_undecided_rows", "local_models", "anchors", "_messages_saved", "server_control", "client_controls",
        "personal", "privacy", "_stopped",
    )

    def snapshot(self) -> bytes:
        """The driver's evolving state, pickled (the executor and the data are rebuilt on resume)."""
        import pickle

        return pickle.dumps({name: getattr(self, name) for name in self._CHECKPOINTED})

    def restore(self, snapshot: bytes) -> None:
        """Continues from a snapshot: in-flight tasks are trained again (same model, client and
        seed give the same update), so nothing depends on the interrupted executor. The snapshot
        is read through an allow-list, so a crafted one cannot run code (checkpoint.py)."""
        for name, value in checkpoint.loads(snapshot).items():
            setattr(self, name, value)
        pending = [t for t in self.tasks.values() if t.trained and t.status == "running" and t.fetched is None]
        by_dispatch: dict[tuple[int, int], list[_Task]] = {}  # as first submitted, so groups match
        for task in sorted(pending, key=lambda t: t.info.task_id):
            if task.start_params is not None:
                self._submit([task], -1 - task.info.task_id, task.start_params)
            else:
                by_dispatch.setdefault((task.seed_key, task.info.base_version), []).append(task)
        for (_, version), tasks in sorted(by_dispatch.items()):
            self._submit(tasks, version, self.bases[version])

    def describe(self) -> dict:
        """Runtime facts for the run summary (e.g. actors replaced after dying)."""
        restarts = getattr(self.executor, "restarts", [])
        return {"actor_restarts": len(restarts), "num_nodes": len(set(getattr(self.executor, "nodes", [])))}
