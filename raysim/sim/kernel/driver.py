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
from dataclasses import replace
from typing import Callable

import numpy as np

from raysim.algorithms.strategy import ServerState, Update
from raysim.models.layout import ParamLayout
from raysim.privacy.hygiene import check_update
from raysim.seeding import Stream, rng
from raysim.sim.state import checkpoint
from raysim.sim.kernel import records
from raysim.sim.state.client_state import ClientState
from raysim.sim.kernel.clock import SimClock
from raysim.sim.cost.payload import payload
from raysim.sim.kernel.dispatch import (
    SILENT_TASKS_PER_CLIENT, Later, RunStalled, Task, TriggerCheck, beyond_first, closing_time, device_failure,
    failure_by, local_epochs,
)
from raysim.sim.kernel.evaluation import central_slices, summarise, test_columns
from raysim.sim.kernel.executor import ClientLost, Executor
from raysim.sim.kernel.parts import DriverParts
from raysim.sim.policies import (
    Action, Aggregate, Arrival, Discard, Dispatch, Dispatched, Failure, ServerView, SetTimer, Suppressed, TaskInfo,
    Timer, postponed,
)
from raysim.sim.kernel.records import RoundReport
from raysim.sim.state.restored import check_restored
from raysim.sim.selection.protocol import SelectionView
from raysim.sim.selection.stage import SelectionStage
from raysim.sim.selection.uniform import idle_online, is_idle_online, next_online
from raysim.sim.kernel.server_step import server_step
from raysim.sim.stages.stage import StageContext, Step
from raysim.sim.state.state_store import ClientStore
from raysim.sim.kernel.tasks import ClientResult, TrainTask


class Driver:
    """The kernel of a star run: the event loop, dispatch, the server step and checkpoints. What
    is optional is a stage (stages/), called at the moments it acts on in the order
    ``parts.stages`` lists them; who is dispatched is the selection stage's (selection/), what
    the server keeps of each client the client state's (client_state.py), the rows records.py's."""

    def __init__(
        self,
        parts: DriverParts,
        *,
        initial_params: np.ndarray,
        layout: ParamLayout,
        client_sizes: np.ndarray,
        test_size: int,
        executor_factory: Callable[[], Executor],
    ):
        self.sizes = np.asarray(client_sizes)
        self.population = parts.population
        self.policy = parts.policy
        self.strategy = parts.strategy
        self.attackers = parts.attackers
        self.limits, self.schedule, self.seed = parts.limits, parts.schedule, parts.seed
        self.clients_per_round = parts.clients_per_round
        self._stopped = False  # e.g. the privacy budget is spent
        self.layout = layout
        self.state = ServerState(params=initial_params, strategy_state=self.strategy.init(initial_params))
        self.privacy = parts.privacy
        self.channel = parts.channel
        self.traffic = payload(parts.exchange_bytes, parts.channel, parts.privacy)
        self.task = parts.task
        self.stages = tuple(parts.stages)
        self.clients = ClientState(store=ClientStore(budget_bytes=parts.client_state_bytes), personal=parts.personal)
        # client -> the task whose state the store keeps (TrainTask.state_version); not
        # checkpointed: a resumed run's executor is new and holds no state
        self._state_versions: dict[int, int] = {}
        self.selection = SelectionStage(parts.selector)
        self.test_slices = central_slices(test_size)
        self.executor = executor_factory()
        self.clock = SimClock()
        self.tasks: dict[int, Task] = {}
        self.busy: set[int] = set()
        self.bases: dict[int, np.ndarray] = {0: self.state.params}
        self.broadcasts: dict[int, dict[str, np.ndarray]] = {}  # the strategy's arrays sent with each base
        self.round = 0
        self._dispatches = 0
        self._task_counter = 0
        self._started = False
        self._undecided_rows: list[dict] = []
        self.local_models: dict[int, np.ndarray] = {}  # event-triggered clients' unsent models
        self.anchors: dict[int, tuple[int, np.ndarray]] = {}  # (version, model) each last synced to
        self._messages_saved = 0
        self._round_ended = 0.0  # simulated time the last round's row ends at (the checkpoint's progress)
        self._round_started_wall = time.perf_counter()
        self._run_started_wall = time.perf_counter()

    def _context(self) -> StageContext:
        """What a stage is shown of the run now."""
        return StageContext(round=self.round, now=self.clock.now, seed=self.seed, params=self.state.params,
                            task=self.task, evaluator=self.executor, clients=self.clients, finished=self.finished)

    # -- the loop ---------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        limit = self.limits.sim_time_limit
        return self._stopped or self.round >= self.limits.rounds or bool(limit and self.clock.now >= limit)

    def view(self) -> ServerView:
        return ServerView(
            now=self.clock.now, version=self.state.version,
            clients_per_round=self.clients_per_round, population=len(self.sizes),
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
                    f"of {self.limits.rounds}: nothing left to simulate"
                )
            _, event = self.clock.pop()
            if isinstance(event, Later):
                reports += self._execute(list(event.actions))
                continue
            if isinstance(event, TriggerCheck):
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
                    self.clock.schedule(self.clock.now + busy, Later(later))
                    break
            elif isinstance(action, Discard):
                self._discard(action)
            elif isinstance(action, SetTimer):
                self.clock.schedule(action.at, Timer(action.tag))
            else:
                raise TypeError(f"unknown policy action {action!r}")
        return reports

    # -- dispatch ------------------------------------------------------------------------------

    def _dispatch(self, action: Dispatch) -> list[RoundReport]:
        now = self.clock.now
        self._dispatches += 1
        chosen = self._named(action.clients) if action.clients else self._select(action.count, key=self._dispatches)
        if not chosen:
            self.clock.schedule(next_online(self.population, busy=self.busy, now=now), Later((action,)))
            return []
        self.selection.dispatched(chosen, round_number=self.round + 1)
        epochs = local_epochs(self.schedule, chosen, seed=self.seed, key=self._dispatches)
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
        excess, first_k_in = beyond_first(arrivals, action.keep_first)
        for task in excess:
            self._fail(task, "excess", first_k_in)
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

    def _select(self, count: int, *, key: int) -> list[int]:
        """A stage's choice (incentives' priced draw), else the selection stage's, drawing from
        (seed, dispatch number)."""
        view = self._selection_view()
        for stage in self.stages:
            chosen = stage.choose(count, view, rng(self.seed, Stream.SELECTION, key))
            if chosen is not None:
                return chosen
        return self.selection.choose(count, view, rng(self.seed, Stream.SELECTION, key))

    def _selection_view(self) -> SelectionView:
        population, now, busy = self.population, self.clock.now, frozenset(self.busy)

        def expected_duration_s(client: int) -> float:
            timing = population.timing(client, start=now, samples=int(self.sizes[client]), epochs=self.schedule.epochs,
                                       model_bytes=self.traffic.download_bytes, update_bytes=self.traffic.upload_bytes)
            return timing.end - now

        return SelectionView(round=self.round + 1, now=now, num_clients=population.num_clients, examples=self.sizes,
                             busy=busy, records=self.selection.records,
                             available=lambda c: is_idle_online(population, c, busy=busy, now=now) and self._eligible(c),
                             expected_duration_s=expected_duration_s)

    def _named(self, clients: tuple[int, ...]) -> list[int]:
        """The policy's chosen clients that are idle, online and eligible now."""
        return sorted(c for c in idle_online(self.population, set(clients), busy=self.busy, now=self.clock.now)
                      if self._eligible(c))

    def _eligible(self, client: int) -> bool:
        return all(stage.eligible(client, self.clock.now) for stage in self.stages)

    def _plan_task(self, client: int, now: float, epochs: int, action: Dispatch) -> tuple[Task, tuple[str, float] | None]:
        """A client's task with its timing, and how and when it will fail, if it will (the
        failure is scheduled by ``_dispatch`` once the round's closing time is known)."""
        samples, traffic = int(self.sizes[client]), self.traffic

        def timed(epochs: int):
            return self.population.timing(client, start=now, samples=samples, epochs=epochs,
                                          model_bytes=traffic.download_bytes, update_bytes=traffic.upload_bytes)

        timing = timed(epochs)
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
                timing = timed(epochs)
        for stage in self.stages:  # broker, ledger: the transfers go through the network's nodes
            timing = stage.timing(client, timing, download=local is None, model_bytes=traffic.download_bytes,
                                  update_bytes=traffic.upload_bytes)
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
        failure = device_failure(self.population, client, task_id, timing)
        if failure is None and action.cutoff is not None and timing.end > action.cutoff:
            failure = "late", action.cutoff
        elif failure is None and epochs < self.schedule.epochs and self.schedule.drop_stragglers:
            failure = "straggler", timing.end
        return task, failure

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
                           state=self.clients.algorithm_state(t.info.client_id), server=self.broadcasts[key],
                           state_version=self._state_versions.get(t.info.client_id))
                 for t in tasks],
                [t.samples * t.info.epochs for t in tasks],
            )

    def _fail(self, task: Task, reason: str, at: float) -> None:
        task.status = reason
        self.clock.schedule(max(at, task.info.start), Failure(task.info, reason))

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
        self._undecided_rows.append(self._client_row(task))
        del self.tasks[task.info.task_id]
        return Suppressed(task.info)

    # -- settle and aggregate ------------------------------------------------------------------

    def _settle(self, event: Arrival | Failure) -> None:
        """A task's fate reached the server: free its client, record failures now and keep what
        a finished task's client keeps."""
        task = self.tasks[event.task.task_id]
        self.busy.discard(task.info.client_id)
        if isinstance(event, Failure):
            self.selection.failed(task.info.client_id, event.reason)
            self._undecided_rows.append(self._client_row(task))
            del self.tasks[task.info.task_id]
        else:
            self._finished(task)

    def _finished(self, task: Task) -> ClientResult | None:
        """The result of a task whose client finished it (None: lost with its worker). The first
        call fetches it and commits what the client keeps of it, its algorithm state and head
        (client_state.py), whatever the server later does with the update; a non-finite update
        (hygiene rejects it) keeps nothing and records nothing of its training."""
        if task.fetched is not None or task.status == "lost":
            return task.fetched
        result = task.fetched = self._fetch(task)
        if result is None or check_update(result.delta, self.state.params.size) is not None:
            return result
        client = task.info.client_id
        task.result.update(steps=result.steps, train_loss=result.mean_loss, wall_train_s=result.wall_s,
                           **{f"metric_{name}": value for name, value in result.metrics.items()})
        self.selection.arrived(client, round_number=task.round, loss=result.mean_loss, metrics=result.metrics,
                               samples=task.samples, duration_s=task.info.end - task.info.start, compute_s=task.compute_s)
        if result.state is not None:
            self.clients.keep_algorithm_state(client, result.state)
            self._state_versions[client] = task.info.task_id
            # the store holds it now (and spills it beyond its budget): the result does not
            result = task.fetched = replace(result, state=None)
        self.clients.keep_head(client, self._start_of(task), result.delta)
        return result

    def _fetch(self, task: Task) -> ClientResult | None:
        """The task's result, or None (status "lost") when its worker died and the failure policy
        (``resources.actor_failure = "drop"``) drops the work."""
        try:
            return self.executor.result(task.info.task_id)
        except ClientLost:
            task.status = "lost"
            return None

    def _delta_for_server(self, task: Task, result: ClientResult, context: StageContext, *,
                          rebase: bool) -> np.ndarray:
        """What the server aggregates for a task: the client's delta as the stages deliver it
        (an attacker's tampered with, a codec's decoded), re-expressed against the current model
        for mixing rules, heads removed."""
        delta = result.delta
        if task.new_model is not None:  # event-triggered: the change since the client last synced
            delta = task.new_model - self.anchors[task.info.client_id][1]
        for stage in self.stages:
            delta = stage.inbound(task, delta, context)
        if rebase:
            start = self.anchors[task.info.client_id][1] if task.trigger is not None else self.bases[task.info.base_version]
            delta = (start.astype(np.float64) + delta) - self.state.params
        return self.clients.sent(delta)

    def _discard(self, action: Discard) -> None:
        self.executor.forget(action.task_ids)
        for task_id in action.task_ids:
            task = self.tasks.pop(task_id)
            task.status = "discarded"
            self._undecided_rows.append(self._client_row(task))

    def _aggregate(self, action: Aggregate) -> RoundReport | None:
        """One server step; None, with the run stopped, when a stage forbids it (the privacy budget)."""
        clients = [self.tasks[t].info.client_id for t in action.task_ids]
        if not all(stage.allows_step(clients) for stage in self.stages):
            self._stopped = True
            return None
        scales = action.scales or (1.0,) * len(action.task_ids)
        updates, rows = [], []
        context = self._context()  # the run as it stands until the step: one for every update
        for task_id, scale in zip(action.task_ids, scales):
            task = self.tasks[task_id]
            result = self._finished(task)
            reason = None if result is None else check_update(result.delta, self.state.params.size)
            if result is None or reason is not None:  # lost with its worker, or never let it near the model
                if reason is not None:
                    task.status = "rejected"
                    task.result["rejected_because"] = reason
                rows.append((task, None))
                del self.tasks[task_id]
                continue
            delta = self._delta_for_server(task, result, context, rebase=action.rebase)
            task.status = "applied"
            updates.append(Update(client_id=task.info.client_id, num_samples=result.num_samples,
                                  steps=result.steps, delta=delta, scale=scale, extras=result.extras,
                                  metrics=result.metrics))
            rows.append((task, self.state.version - task.info.base_version))
            del self.tasks[task_id]
        applied = {task.info.client_id: task for task, staleness in rows if staleness is not None}
        for stage in self.stages:
            updates = stage.admit(updates, applied, context)
        dropped = [r["client_id"] for r in self._undecided_rows if r["status"] in ("dropout", "offline")]
        start = self.state
        self.state, metrics = server_step(self.strategy, self.state, updates, privacy=self.privacy,
                                          round_number=self.round + 1, dropped=dropped)
        self.round += 1
        self._release_bases()
        client_rows = self._undecided_rows + [self._client_row(t, applied_round=self.round, staleness=s) for t, s in rows]
        self._undecided_rows = []
        step = Step(strategy=self.strategy, start=start, state=self.state, updates=updates,
                    busy_s=metrics.get("protocol_sim_s", 0.0))
        metrics, tables = self._after_step(step, metrics)  # before the row, so round_wall_s includes it
        round_row = self._round_row(updates, client_rows, metrics)
        self._round_ended = float(round_row["sim_time"])
        context = self._context()
        eval_rows = [row for stage in self.stages for row in stage.evaluate(round_row, context)]
        network = {name: value for stage in self.stages for name, value in stage.network(self.round).items()}
        return RoundReport(round_row, client_rows, eval_rows, tables, network,
                           self.model_arrays() if self.limits.keeps_model(self.round) else None)

    def _after_step(self, step: Step, metrics: dict) -> tuple[dict, dict[str, list[dict]]]:
        """The stages' part of a step: the time they hold the server (the step's
        ``protocol_sim_s``), their columns after the step's metrics, their tables."""
        context, tables = self._context(), {}
        for stage in self.stages:
            out = stage.after_step(step, context)
            metrics = {**metrics, **out.columns}
            if out.busy_s is not None:
                step.busy_s += out.busy_s
                metrics["protocol_sim_s"] = step.busy_s
            tables.update(out.tables)
        return metrics, tables

    # -- rows ----------------------------------------------------------------------------------

    def _client_row(self, task: Task, *, applied_round: int | None = None, staleness: int | None = None) -> dict:
        return records.client_row(
            task, round_number=applied_round if applied_round is not None else self.round + 1, staleness=staleness,
            traffic=self.traffic, full_epochs=self.schedule.epochs, attacker=task.info.client_id in self.attackers,
            extra={name: value for stage in self.stages for name, value in stage.client_columns(task).items()})

    def _round_row(self, updates: list[Update], client_rows: list[dict], metrics: dict) -> dict:
        evaluated = self.round % self.limits.eval_every == 0 or self.finished
        scored = self.executor.evaluate(self.state.params, self.test_slices) if evaluated else []
        wall = time.perf_counter()
        row = records.round_row(
            round_number=self.round, version=self.state.version,
            sim_time=self.clock.now + metrics.get("protocol_sim_s", 0.0),  # the step's end
            wall_time=wall - self._run_started_wall, round_wall_s=wall - self._round_started_wall,
            updates=updates, client_rows=client_rows, evaluation=test_columns(summarise(scored, self.task)),
            messages_saved=self._messages_saved,
            extra={**{name: value for stage in self.stages for name, value in stage.round_columns(client_rows).items()},
                   **metrics})
        self._round_started_wall = wall
        self._messages_saved = 0
        return row

    def _release_bases(self) -> None:
        needed = {t.info.base_version if t.start_params is None else -1 - t.info.task_id
                  for t in self.tasks.values() if t.status == "running"}
        needed.add(self.state.version)
        for version in list(self.bases):
            if version not in needed:
                del self.bases[version]
                self.broadcasts.pop(version, None)

    def _abandon_in_flight(self) -> None:
        running = [t for t in self.tasks.values() if t.status == "running" and t.trained]
        self.executor.forget([t.info.task_id for t in running])
        for task in running:
            task.status = "unfinished"

    def use_state_dir(self, directory) -> None:
        """Spills the per-client store into ``directory`` (the run folder's ``client_state``)."""
        self.clients.store.use_directory(directory)

    def close(self) -> None:
        self.executor.shutdown()
        self.clients.store.close()

    # -- checkpoints: everything that evolves, so a resumed run ends exactly as an uninterrupted one

    # The privacy stage is shared by the kernel (the step's reduction) and the budget stage, so it
    # is written once and referred to after; both come before the task table's objects.
    _CHECKPOINTED = (
        "state", "clock", "policy", "privacy", "stages", "tasks", "busy", "bases", "round", "_dispatches",
        "_task_counter", "_started", "_undecided_rows", "local_models", "anchors", "_messages_saved", "clients",
        "_stopped", "broadcasts", "_round_ended", "selection",
    )

    @staticmethod
    def _progress(values: dict) -> checkpoint.Progress:
        """The round and the simulated time its row ends at, as the checkpointed values say."""
        return values["round"], values["_round_ended"]

    def snapshot(self) -> bytes:
        """The driver's evolving state as data (checkpoint.py; the executor and the data are
        rebuilt on resume); the per-client store is written to its files first, so the
        snapshot holds their names, not the arrays."""
        self.clients.store.flush()
        return checkpoint.snapshot(self)

    def restore(self, snapshot: bytes) -> None:
        """Continues from a snapshot: in-flight tasks are trained again (same model, client and
        seed give the same update), so nothing depends on the interrupted executor. The snapshot
        is decoded against this driver, built from the scenario (checkpoint.py): CheckpointError,
        with nothing changed, when it is foreign or does not fit."""
        checkpoint.restore(self, snapshot)
        check_restored(self)
        self.clients.store.forget_unreferenced(len(self.sizes))
        pending = [t for t in self.tasks.values() if t.trained and t.status == "running" and t.fetched is None]
        by_dispatch: dict[tuple[int, int], list[Task]] = {}  # as first submitted, so groups match
        for task in sorted(pending, key=lambda t: t.info.task_id):
            if task.start_params is not None:
                self._submit([task], -1 - task.info.task_id, task.start_params)
            else:
                by_dispatch.setdefault((task.seed_key, task.info.base_version), []).append(task)
        for (_, version), tasks in sorted(by_dispatch.items()):
            self._submit(tasks, version, self.bases[version])

    def model_arrays(self) -> dict[str, np.ndarray]:
        """The global model by parameter name (the model's ``state_dict`` keys), as the run's
        result (``results/model_file.py``)."""
        return self.layout.named(self.state.params)

    MODEL_CONTENT = "the global model"
    CLIENT_CONTENT = "client {client}'s own part of the model (laid over the global model)"

    def client_models(self) -> dict[int, dict[str, np.ndarray]]:
        """Each client's own part of the model by entry name, as the run's result: with personal
        layers the entries of its head; with a client algorithm that keeps a whole model as its
        state's ``personal`` array (Ditto, examples/ditto) that model; none for a client without."""
        personal, parts = self.clients.personal, {}
        head_entries = (None if personal is None else
                        [n for n, m in self.layout.named(personal.mask).items() if m.all()])
        for client in range(len(self.sizes)):
            own = self.clients.algorithm_state(client).get("personal")
            if own is not None and own.size == self.layout.size:
                parts[client] = self.layout.named(np.asarray(own).reshape(-1))
            elif head_entries and (head := self.clients.head(client)) is not None:
                named = self.layout.named(personal.start(self.state.params, head))
                parts[client] = {name: named[name] for name in head_entries}
        return parts

    def describe(self) -> dict:
        """Runtime facts for the run summary (e.g. actors replaced after dying)."""
        restarts = getattr(self.executor, "restarts", [])
        return {"actor_restarts": len(restarts), "num_nodes": len(set(getattr(self.executor, "nodes", [])))}
