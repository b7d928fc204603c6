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

import time
from typing import Callable

import numpy as np

from raysim.algorithms.strategy import ServerState, Update
from raysim.models.layout import ParamLayout
from raysim.network.ledger import committee_accept, score_updates
from raysim.privacy.hygiene import check_update
from raysim.seeding import Stream, rng
from raysim.sim import checkpoint
from raysim.sim.client_state import ClientState
from raysim.sim.clock import SimClock
from raysim.sim.contribution import ContributionLedger
from raysim.sim.dispatch import Dispatching, Later, Task, TriggerCheck
from raysim.models.learning_task import primary
from raysim.sim.evaluation import central_slices, evaluate_clients, holdout_rows, holdout_slices, summarise, utility
from raysim.sim.executor import ClientLost, Executor
from raysim.sim.incentives import Incentives, Incentivised
from raysim.sim.selection.stage import SelectionStage
from raysim.sim.parts import DriverParts
from raysim.sim.policies import (
    Action, Aggregate, Arrival, Discard, Dispatch, Failure, ServerView, SetTimer, Timer, postponed,
)
from raysim.sim.records import Recording, RoundReport
from raysim.sim.restored import check_restored
from raysim.sim.server_step import server_step
from raysim.sim.state_store import ClientStore
from raysim.sim.tasks import ClientIndices, ClientResult


class Driver(Incentivised, Dispatching, Recording):
    """The event loop, the server step and checkpoints; dispatch (dispatch.py), the recorded
    rows (records.py), the per-client state (client_state.py) and valuing and paying clients
    (incentives.py, contribution.py) are its other parts."""

    def __init__(
        self,
        parts: DriverParts,
        *,
        initial_params: np.ndarray,
        layout: ParamLayout,
        client_sizes: np.ndarray,
        test_size: int,
        executor_factory: Callable[[], Executor],
        holdout: ClientIndices | None = None,
        validation: np.ndarray | None = None,
    ):
        self.sizes = np.asarray(client_sizes)
        self.population = parts.population
        self.policy = parts.policy
        self.strategy = parts.strategy
        self.attack, self.attackers = parts.attack, parts.attackers
        self.limits, self.schedule, self.seed = parts.limits, parts.schedule, parts.seed
        self.clients_per_round = parts.clients_per_round
        self._stopped = False  # e.g. the privacy budget is spent
        self.layout = layout
        self.state = ServerState(params=initial_params, strategy_state=self.strategy.init(initial_params))
        self.exchange_bytes = parts.exchange_bytes
        self.privacy = parts.privacy
        self.channel = parts.channel
        self.links, self.chain = parts.links, parts.chain
        uplink = self.channel.uplink if self.channel else None
        downlink = self.channel.downlink if self.channel else None
        # what one client uploads: the update, its encoded form, or its masked / encrypted form;
        # payload bytes, unframed, as the dense model is counted (compression/codec.py)
        self.upload_bytes = (uplink.payload_bytes if uplink else
                             self.privacy.upload_bytes if self.privacy else self.exchange_bytes)
        self.download_bytes = downlink.payload_bytes if downlink else self.exchange_bytes
        self.holdout = holdout
        self.evaluation = parts.evaluation
        self.task = parts.task
        contribution, incentive = parts.contribution, parts.incentive
        self.ledger = (ContributionLedger(contribution, validation=validation, population=len(self.sizes), seed=self.seed,
                              task=self.task)
                       if contribution is not None else None)
        self.incentives = (Incentives(incentive, pay_by=incentive.method or contribution.methods[0],
                                      cohort=self.clients_per_round) if incentive is not None else None)
        self.clients = ClientState(store=ClientStore(budget_bytes=parts.client_state_bytes), personal=parts.personal)
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

    # -- settle and aggregate ------------------------------------------------------------------

    def _settle(self, event: Arrival | Failure) -> None:
        """A task's fate reached the server: free its client, record failures now and keep what
        a finished task's client keeps."""
        task = self.tasks[event.task.task_id]
        self.busy.discard(task.info.client_id)
        if isinstance(event, Failure):
            self.selection.failed(task.info.client_id, event.reason)
            self._undecided_rows.append(self._client_row(task, applied_round=None, staleness=None))
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

    def _delta_for_server(self, task: Task, result: ClientResult, *, rebase: bool) -> np.ndarray:
        """What the server aggregates for a task: the client's delta as sent (an attacker's is
        tampered with), re-expressed against the current model for mixing rules, heads removed."""
        delta = result.delta
        if task.new_model is not None:  # event-triggered: the change since the client last synced
            delta = task.new_model - self.anchors[task.info.client_id][1]
        if task.info.client_id in self.attackers and self.attack.target == "update":
            delta = self.attack(delta, rng=rng(self.seed, Stream.ATTACK, task.info.task_id))
        if self.channel is not None and self.channel.uplink is not None:
            delta = self._encoded(task, delta)
        if rebase:
            start = self.anchors[task.info.client_id][1] if task.trigger is not None else self.bases[task.info.base_version]
            delta = (start.astype(np.float64) + delta) - self.state.params
        return self.clients.sent(delta)

    def _encoded(self, task: Task, delta: np.ndarray) -> np.ndarray:
        """The update as the server decodes it from the codec's bytes; the client's error-feedback
        memory moves on (it lives here, by client id, so it does not depend on which worker
        trained the client, survives lost workers and is checkpointed with the driver)."""
        client = task.info.client_id
        sent = self.channel.upload(delta, self.clients.feedback(client),
                                   rng(self.seed, Stream.COMPRESSION, task.seed_key, client))
        if sent.memory is not None:
            self.clients.keep_feedback(client, sent.memory)
        return sent.delta

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
            result = self._finished(task)
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
            updates.append(Update(client_id=task.info.client_id, num_samples=result.num_samples,
                                  steps=result.steps, delta=delta, scale=scale, extras=result.extras,
                                  metrics=result.metrics))
            rows.append((task, self.state.version - task.info.base_version))
            del self.tasks[task_id]
        if self.chain is not None and self.chain.config.consensus == "committee":
            updates = self._committee(updates, rows)
        dropped = [r["client_id"] for r in self._undecided_rows if r["status"] in ("dropout", "offline")]
        start = self.state
        self.state, metrics = server_step(self.strategy, self.state, updates, privacy=self.privacy,
                                          round_number=self.round + 1, dropped=dropped)
        if self.chain is not None:  # the block holds the server until it is mined
            busy = metrics.get("protocol_sim_s", 0.0)
            block_s, columns = self.chain.append([u.delta for u in updates], self.clock.now + busy)
            metrics = {**metrics, **columns, "protocol_sim_s": busy + block_s}
        self.round += 1
        self._release_bases()
        client_rows = self._undecided_rows + [self._client_row(t, applied_round=self.round, staleness=s) for t, s in rows]
        self._undecided_rows = []
        tables = self._value_round(start, updates)  # before the row, so round_wall_s includes it
        round_row = self._round_row(updates, client_rows, metrics)
        self._round_ended = float(round_row["sim_time"])
        eval_rows = (self._evaluate_clients(round_row) if self.evaluation.active
                     else self._evaluate_holdout(round_row))
        return RoundReport(round_row, client_rows, eval_rows, {**tables, **self._message_rows()},
                           self._network_tables(), self.model_arrays() if self.limits.keeps_model(self.round) else None)

    def _evaluate_holdout(self, round_row: dict) -> list[dict]:
        """With personal layers' held-out slices (and no [evaluation]): the task's metrics of the
        global and the personalised model per client on evaluated rounds, the sample-weighted
        means of the primary one on the round row (``holdout_{global,personal}_<metric>``)."""
        if self.holdout is None or not self._evaluating():
            return []
        owners, slices = holdout_slices(self.holdout, self.clients.head)
        eval_rows = holdout_rows(owners, slices, self.executor.evaluate(self.state.params, slices), self.round,
                                 self.task)
        if eval_rows:
            held = np.array([r["samples"] for r in eval_rows], dtype=float)
            metric, _ = primary(self.task)
            for kind in ("global", "personal"):
                values = np.array([r[f"{kind}_{metric}"] for r in eval_rows])
                round_row[f"holdout_{kind}_{metric}"] = float((values * held).sum() / held.sum())
        return eval_rows

    def _committee(self, updates: list[Update], rows: list) -> list[Update]:
        """Ledger with a committee (BFLC, arXiv:2004.00773): each of this round's members scores
        every update by the task's primary metric (``utility``: accuracy for classification) of
        the model it would give on the member's own validation
        slice (a fixed chunk of the test set); the ``reject`` updates of lowest median score are
        dropped (their tasks marked rejected) and the rest aggregated and committed."""
        if len(updates) < 2:
            return updates
        chunks = self.test_slices

        def score(member: int, delta: np.ndarray) -> float:
            candidate = (self.state.params.astype(np.float64) + delta).astype(self.state.params.dtype)
            scored = self.executor.evaluate(candidate, [chunks[member % len(chunks)]])
            return utility(summarise(scored, self.task), self.task)

        scores = score_updates(self.chain.members(self.round + 1), [u.delta for u in updates], score)
        kept = set(committee_accept(scores, min(self.chain.config.reject, len(updates) - 1)).tolist())
        tasks = {task.info.client_id: task for task, staleness in rows if staleness is not None}
        for index, update in enumerate(updates):
            if index not in kept:
                tasks[update.client_id].status = "rejected"
                tasks[update.client_id].result["rejected_because"] = "committee"
        return [u for i, u in enumerate(updates) if i in kept]

    def _evaluate_clients(self, round_row: dict) -> list[dict]:
        """[evaluation]'s client evaluation, every ``evaluation.every`` rounds and at the last one;
        its distribution joins the round row."""
        if self.round % self.evaluation.every and not self.finished:
            return []
        rows, spread = evaluate_clients(self.evaluation, self.holdout, self.clients.head, self.executor.evaluate,
                                        self.state.params, seed=self.seed, round_number=self.round, task=self.task)
        round_row.update(spread)
        return rows

    def _evaluating(self) -> bool:
        return self.round % self.limits.eval_every == 0 or self.finished

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

    _CHECKPOINTED = (
        "state", "clock", "policy", "tasks", "busy", "bases", "round", "_dispatches", "_task_counter", "_started",
        "_undecided_rows", "local_models", "anchors", "_messages_saved", "clients", "privacy",
        "_stopped", "broadcasts", "ledger", "incentives", "links", "chain", "_round_ended", "selection",
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
