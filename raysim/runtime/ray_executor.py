"""Client work on Ray actors: a pool of ``ClientActor`` actors, balanced per round.

Each model version is ``ray.put`` once and shared by every task trained from it. A round's
tasks, in groups trained together as a batch of models when vectorised (``group_tasks``), are
assigned to actors longest-first onto the least-loaded actor (expected cost = samples x
epochs), so a round with unequal clients still finishes together; each actor gets its list in
calls whose results are about ``CALL_RESULT_BYTES`` at most (whole groups), so each call's
results can be fetched, and freed, as it ends. Results are collected in completion order with
``ray.wait``, so a failing client surfaces as soon as its actor reports, not when the driver
happens to ask for it. Evaluation slices are spread over the same actors.

Client state stays where the client trains. An actor keeps, per client, the state its last
task returned (``StateCache``, within ``state_bytes``), under the id of that task, the version
the driver gives with the client's next task (``TrainTask.state_version``); the executor keeps
a mirror of what each actor holds, sends a group preferably to the actor that holds its
clients' states (as long as that keeps the actors' loads within half a group of even) and
sends a state only when the target actor does not hold that version: a client's first task,
after a resume, after its actor was replaced or evicted the state, or when balance moved the
client. Results still bring every new state back to the driver's store, the source of truth
for checkpoints and lost actors. The floats do not depend on any of it: the groups are
``group_tasks``'s (a pure function of the task list) and a held state is the very array the
driver's store keeps. Should the mirror be wrong (an actor evicted differently), the actor
refuses the call (``StateMissing``) and the batch is sent again with every state.

Results are copied out of the object store as soon as they are fetched and their refs let go:
a numpy array read from it is a view that keeps the whole call's shared memory in use for as
long as it lives (a client state in the driver's store, for many rounds), and shared memory once
used stays resident (``session.OBJECT_STORE_FRACTION``).

An actor that dies (killed, out of memory) is replaced at once. With ``actor_failure =
"rerun"`` its unfinished batches are re-run on the newcomer: training is a pure function of
(model version, client, seed), so the re-run gives the same updates and the run's metrics do
not change. With ``"drop"`` its clients' work is lost: their results raise ``ClientLost`` and
the driver records them as failed, as a real deployment loses a crashed device's update.
Actors that keep dying with nothing finishing in between (something kills them faster than
they start) end the run with ``WorkersLost`` after ``restart_limit`` replacements, instead of
replacing them forever.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import ray
from ray.exceptions import RayActorError, RayTaskError

from raysim.runtime import WorkersLost
from raysim.sim.kernel.evaluation import EvalCounts, EvalSlice
from raysim.sim.kernel.executor import ClientLost
from raysim.sim.kernel.tasks import ClientError, ClientResult, TrainTask, group_tasks


class StateMissing(RuntimeError):
    """An actor was told it holds a client's state that it does not hold (the executor's mirror
    of its cache was wrong): the executor sends the batch again with the states."""


class StateCache:
    """Per client, the version (a task id) of the state an actor holds and its size, the least
    recently returned first, within ``budget_bytes``; the actor keeps the arrays too, the
    executor's mirror of it only the sizes. The actor and the mirror make the same calls in
    nearly the same order, so they agree but for rare races (``StateMissing`` covers those)."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.entries: OrderedDict[int, tuple[int, int, Any]] = OrderedDict()  # client -> (version, bytes, arrays)
        self.held_bytes = 0

    def holds(self, client: int, version: int | None) -> bool:
        entry = self.entries.get(client)
        return entry is not None and version is not None and entry[0] == version

    def arrays(self, client: int) -> Any:
        return self.entries[client][2]

    def bytes_of(self, client: int) -> int:
        return self.entries[client][1]

    def keep(self, client: int, version: int, size: int, arrays: Any = None) -> None:
        """Holds a client's new state, evicting the least recently used beyond the budget."""
        self.drop(client)
        if size > self.budget_bytes:
            return
        self.entries[client] = (version, size, arrays)
        self.held_bytes += size
        while self.held_bytes > self.budget_bytes:
            _, (_, freed, _) = self.entries.popitem(last=False)
            self.held_bytes -= freed

    def drop(self, client: int) -> None:
        entry = self.entries.pop(client, None)
        if entry is not None:
            self.held_bytes -= entry[1]

    def clear(self) -> None:
        self.entries.clear()
        self.held_bytes = 0


def actor_state_bytes(store_bytes: int, num_actors: int) -> int:
    """Each actor's share of the states the actors hold: together half the driver's store budget
    (``resources.client_state_mb``). The states an actor holds are the ones most recently
    returned, which the store also holds while its budget lasts, so the run's client state in
    memory stays within 1.5 times the budget; half rather than all of it, because a state an
    actor holds saves one transfer to it and is worth less than the store's copy, which saves a
    read from disk and is needed for every checkpoint."""
    return store_bytes // (2 * max(1, num_actors))


def _size(state: Mapping[str, np.ndarray]) -> int:
    return sum(int(np.asarray(a).nbytes) for a in state.values())


# What one call's results may hold, in the object store from the call's end until the driver
# fetches them: a round's results otherwise sit there whole (100 clients of the FedAvg CNN with
# SCAFFOLD: 1.3 GB). 64 MiB is a few such clients a call, whose overhead (about a millisecond)
# stays small beside their training; a group trained as one batch of models is never split.
CALL_RESULT_BYTES = 64 << 20


def _calls(groups: list[list[TrainTask]], costs: list[float], params_bytes: int) -> list[tuple[list, float]]:
    """An actor's groups, in order, cut into calls of about ``CALL_RESULT_BYTES`` of results at
    most (each task's delta, the model's size, and its new state, as large as its current one);
    each call's groups and cost."""
    calls: list[tuple[list, float]] = []
    size = 0
    for group, cost in zip(groups, costs):
        expected = sum(params_bytes + _size(t.state) for t in group)
        if calls and size + expected <= CALL_RESULT_BYTES:
            calls[-1] = (calls[-1][0] + [group], calls[-1][1] + cost)
            size += expected
        else:
            calls.append(([group], cost))
            size = expected
    return calls


class ClientActor:
    """The Ray actor around a ``ClientWorker``, which it builds inside its own process: whoever
    creates or replaces actors (the driver actor) then never imports torch or the models. It
    holds the states its tasks returned, within ``state_bytes`` (module docstring)."""

    def __init__(self, *, state_bytes: int = 0, **worker_kwargs: Any):
        from raysim.runtime.worker import ClientWorker

        self._states = StateCache(state_bytes)
        self._model = worker_kwargs["model"]
        try:
            self._worker, self._failed = ClientWorker(**worker_kwargs), None
        except Exception as exc:  # raised by the calls instead (see ``worker``)
            self._worker, self._failed = None, exc

    def _ready(self) -> None:
        """Raises the error building the worker raised, as itself: Ray would report an
        ``__init__`` that raised only as the actor's death, the error as text."""
        if self._failed is not None:
            raise self._failed

    @property
    def worker(self) -> Any:
        self._ready()
        return self._worker

    def initial_state(self, seed: int) -> tuple[np.ndarray, Any]:
        """The global model at version 0 and its layout (``models.initial_state``), computed here,
        where torch is imported anyway, for the process that starts the run: it then never
        imports torch. A model that cannot be built raises its own error here."""
        from raysim.models.models import initial_state

        return initial_state(self._model, seed)

    def train(self, params: np.ndarray, groups: list[list[TrainTask]], held: Sequence[int] = ()) -> list[ClientResult]:
        """Trains the groups; the tasks of ``held`` (ids) come without their state, which this
        actor holds (``TrainTask.state_version``). It then holds every state the tasks returned."""
        worker, held = self.worker, set(held)
        if held:
            tasks = [t for group in groups for t in group if t.task_id in held]
            missing = [t.client_id for t in tasks if not self._states.holds(t.client_id, t.state_version)]
            if missing:
                raise StateMissing(f"this actor does not hold the states of clients {missing}")
            groups = [[replace(t, state=self._states.arrays(t.client_id)) if t.task_id in held else t for t in group]
                      for group in groups]
        results = worker.train(params, groups)
        for result in results:
            if result.state is not None:
                self._states.keep(result.client_id, result.task_id, _size(result.state), result.state)
        return results

    def evaluate(self, params: np.ndarray, slices: list[EvalSlice]) -> list[EvalCounts]:
        return self.worker.evaluate(params, slices)

    def evaluate_models(self, models: list[np.ndarray], slices: list[EvalSlice]) -> list[list[EvalCounts]]:
        return self.worker.evaluate_models(models, slices)

    def node_id(self) -> str:
        """The Ray node it was placed on; answering also says it is ready."""
        self._ready()
        return ray.get_runtime_context().get_node_id()


@dataclass
class _Batch:
    """One actor call: the tasks it trains (with their states, until it is fetched: a replaced
    actor is sent them again) and, once fetched, their results."""

    actor: int
    version: int
    groups: list[list[TrainTask]]
    cost: float
    ref: Any = None
    results: list[ClientResult] | None = None
    lost: bool = False  # its actor died and the failure policy drops the work
    position: dict[int, int] = field(init=False)  # task id -> index into the results, in call order
    unread: set[int] = field(init=False)

    def __post_init__(self) -> None:
        self.position = {t.task_id: i for i, t in enumerate(t for group in self.groups for t in group)}
        self.unread = set(self.position)


def start_workers(*, num_actors: int, num_cpus: float, num_gpus: float, worker_kwargs: dict[str, Any],
                  placements: Sequence[dict[str, Any]] = (), state_bytes: int = 0) -> list[Any]:
    """Starts the client actors without waiting for them, so they boot while other work goes on;
    actor i goes where ``placements[i]`` says (a bundle of a sweep trial's placement group).
    ``state_bytes``: the client states each holds (``actor_state_bytes``)."""
    kwargs = _actor_kwargs(worker_kwargs, num_cpus=num_cpus, num_gpus=num_gpus)
    return [_actor_class(num_cpus, num_gpus, placements[i] if placements else {}).remote(state_bytes=state_bytes,
                                                                                         **kwargs)
            for i in range(num_actors)]


def _actor_class(num_cpus: float, num_gpus: float, placement: dict[str, Any]) -> Any:
    return ray.remote(ClientActor).options(num_cpus=num_cpus, num_gpus=num_gpus, **placement)


def _actor_kwargs(worker_kwargs: dict[str, Any], *, num_cpus: float, num_gpus: float) -> dict[str, Any]:
    return {**worker_kwargs, "device": "cuda" if num_gpus > 0 else "cpu", "threads": max(1, int(num_cpus))}


def _owned(result: ClientResult) -> ClientResult:
    """The result with its arrays copied out of the object store (module docstring)."""
    def own(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: np.array(array) for name, array in arrays.items()}

    return replace(result, delta=np.array(result.delta), extras=own(result.extras),
                   state=None if result.state is None else own(result.state))


def _spread(costs: Sequence[float], load: list[float],
            prefer: Sequence[int | None] | None = None) -> dict[int, list[int]]:
    """Largest item first onto the least-loaded actor (ties: the earlier item, the lower actor);
    adds to ``load`` in place and returns each actor's item positions in assignment order. An
    item with a ``prefer``red actor (the one holding its clients' states) goes there first, as
    long as that actor's load stays within half the largest item of an even share."""
    shares: dict[int, list[int]] = {}
    order = sorted(range(len(costs)), key=lambda i: (-costs[i], i))
    rest = order
    if prefer is not None and costs:
        even = (sum(load) + sum(costs)) / len(load) + max(costs) / 2
        rest = []
        for i in order:
            actor = prefer[i]
            if actor is not None and load[actor] + costs[i] <= even:
                load[actor] += costs[i]
                shares.setdefault(actor, []).append(i)
            else:
                rest.append(i)
    for i in rest:
        actor = min(range(len(load)), key=lambda a: (load[a], a))
        load[actor] += costs[i]
        shares.setdefault(actor, []).append(i)
    return shares


class RayExecutor:
    def __init__(self, *, actors: list[Any], num_cpus: float, num_gpus: float, worker_kwargs: dict[str, Any],
                 vectorize: bool = False, actor_failure: Literal["rerun", "drop"] = "rerun",
                 placements: Sequence[dict[str, Any]] = (), state_bytes: int = 0):
        """Takes over started actors (see ``start_workers``) and waits until they are ready; a
        replacement goes where the actor it replaces was placed (``placements``). ``vectorize``:
        equal-sized clients are trained as one batch of models (``group_tasks``). ``state_bytes``:
        the client states each actor holds, as ``start_workers`` was told."""
        self._actor_failure = actor_failure
        self._placements = list(placements)
        self._shape = (num_cpus, num_gpus)
        self._worker_kwargs = _actor_kwargs(worker_kwargs, num_cpus=num_cpus, num_gpus=num_gpus)
        self._state_bytes = state_bytes
        self._vectorize = vectorize
        self.actors = list(actors)
        self._held = [StateCache(state_bytes) for _ in self.actors]  # what each actor holds, sizes only
        self.nodes = ray.get([a.node_id.remote() for a in self.actors])
        self.load = [0.0] * len(self.actors)
        self.restarts: list[dict] = []
        # replacements in a row with no batch or evaluation finishing in between
        self.restart_limit = max(3, 2 * len(self.actors))
        self._restarts_without_progress = 0
        self._params: dict[int, tuple[Any, int]] = {}  # version -> (ref, tasks outstanding)
        self._batches: dict[int, _Batch] = {}  # task id -> its batch

    def submit(self, version: int, params: np.ndarray, tasks: Sequence[TrainTask], costs: Sequence[float]) -> None:
        ref, outstanding = self._params.get(version, (None, 0))
        if ref is None:
            ref = ray.put(params)
        self._params[version] = (ref, outstanding + len(tasks))
        cost_of = {t.task_id: c for t, c in zip(tasks, costs)}
        groups = group_tasks(tasks, costs, vectorize=self._vectorize)  # in task order, whatever holds the states
        group_costs = [sum(cost_of[t.task_id] for t in g) for g in groups]
        for actor, share in _spread(group_costs, self.load, [self._holder(g) for g in groups]).items():
            for call, cost in _calls([groups[i] for i in share], [group_costs[i] for i in share], params.nbytes):
                batch = _Batch(actor=actor, version=version, groups=call, cost=cost)
                self._send(batch)
                for task_id in batch.position:
                    self._batches[task_id] = batch

    def _holder(self, group: list[TrainTask]) -> int | None:
        """The actor holding the most bytes of the group's states at the versions given; None
        when none holds any."""
        held = [sum(cache.bytes_of(t.client_id) for t in group
                    if t.state and cache.holds(t.client_id, t.state_version)) for cache in self._held]
        best = max(range(len(held)), key=lambda a: (held[a], -a))
        return best if held[best] > 0 else None

    def _send(self, batch: _Batch) -> None:
        """Calls the batch's actor, leaving out the states it holds; its mirror then holds none
        of the batch's clients until their results say what it holds."""
        cache, held = self._held[batch.actor], set()
        for task in (t for group in batch.groups for t in group):
            if task.state and cache.holds(task.client_id, task.state_version):
                held.add(task.task_id)
            cache.drop(task.client_id)
        sent = [[replace(t, state={}) if t.task_id in held else t for t in group] for group in batch.groups]
        params_ref, _ = self._params[batch.version]
        batch.ref = self.actors[batch.actor].train.remote(params_ref, sent, sorted(held))

    def result(self, task_id: int) -> ClientResult:
        batch = self._batches[task_id]
        while batch.results is None and not batch.lost:
            self._collect_one()
        self._consume(batch, task_id)
        if batch.lost:
            raise ClientLost(task_id, f"client actor {batch.actor} died")
        return batch.results[batch.position[task_id]]

    def forget(self, task_ids: Sequence[int]) -> None:
        for task_id in task_ids:
            batch = self._batches.get(task_id)
            if batch is not None:
                self._consume(batch, task_id)

    def evaluate(self, params: np.ndarray, slices: Sequence[EvalSlice]) -> list[EvalCounts]:
        """Spreads the slices over the actors (largest first onto the least loaded) and gathers
        their counts in slice order; an actor that dies meanwhile is replaced and its share re-scored."""
        ref = ray.put(params)
        shares = _spread([len(s.indices) for s in slices], [0.0] * len(self.actors))
        return self._gather(shares, len(slices),
                            lambda actor, share: self.actors[actor].evaluate.remote(ref, [slices[i] for i in share]))

    def evaluate_models(self, models: Sequence[np.ndarray], slices: Sequence[EvalSlice]) -> list[list[EvalCounts]]:
        """Spreads the models over the actors, one call each with its share of models and every slice."""
        shares = _spread([1.0] * len(models), [0.0] * len(self.actors))
        slices = list(slices)
        return self._gather(shares, len(models), lambda actor, share: self.actors[actor].evaluate_models.remote(
            [models[i] for i in share], slices))

    def _gather(self, shares: dict[int, list[int]], size: int, call: Callable[[int, list[int]], Any]) -> list:
        """Runs ``call(actor, share)`` for each actor's share and puts the answers back in item
        order; an actor that dies meanwhile is replaced and its share asked again."""
        calls = {actor: call(actor, share) for actor, share in shares.items()}
        answers: list = [None] * size
        while calls:
            actor, pending = calls.popitem()
            try:
                scored = ray.get(pending)
            except RayActorError as exc:
                self._replace(actor, exc)
                calls[actor] = call(actor, shares[actor])
                continue
            self._restarts_without_progress = 0
            for i, answer in zip(shares[actor], scored):
                answers[i] = answer
        return answers

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors, self._batches, self._params, self._held = [], {}, {}, []

    def _collect_one(self) -> None:
        """Waits for whichever pending batch finishes first and fetches it (raising its error)."""
        pending = {id(b.ref): b for b in self._batches.values() if b.results is None and not b.lost}
        refs = [b.ref for b in pending.values()]
        ready, _ = ray.wait(refs, num_returns=1)
        batch = next(b for b in pending.values() if b.ref == ready[0])
        try:
            results = ray.get(batch.ref)
        except RayTaskError as exc:
            if isinstance(exc.cause, StateMissing):  # the mirror was wrong: it holds nothing
                self._held[batch.actor].clear()
                self._send(batch)
                return
            cause = exc.cause if isinstance(exc.cause, ClientError) else None
            if cause is not None:
                raise cause from None
            raise
        except RayActorError as exc:
            self._replace(batch.actor, exc)
            return
        batch.results, batch.ref, batch.groups = [_owned(r) for r in results], None, []
        del results  # the last view of the call's shared memory: the object store frees it now
        for result in batch.results:
            if result.state is not None:
                self._held[batch.actor].keep(result.client_id, result.task_id, _size(result.state))
        self._restarts_without_progress = 0
        self.load[batch.actor] -= batch.cost

    def _replace(self, dead: int, exc: Exception) -> None:
        """Starts a new actor in place of a dead one; its unfinished batches are re-run there or
        dropped, as the failure policy says."""
        self._restarts_without_progress += 1
        if self._restarts_without_progress > self.restart_limit:
            raise WorkersLost(
                f"client actors died {self._restarts_without_progress} times in a row with no work finishing "
                f"in between (last: {type(exc).__name__}); something ends them faster than they start "
                "(memory? a process killer?): check the Ray logs, or lower resources.num_gpus / the data's size"
            )
        unfinished = {id(b): b for b in self._batches.values()
                      if b.actor == dead and b.results is None and not b.lost}.values()
        self.restarts.append({"actor": dead, "tasks": sorted(t for b in unfinished for t in b.position),
                              "error": type(exc).__name__, "work": self._actor_failure})
        placement = self._placements[dead] if self._placements else {}
        self.actors[dead] = _actor_class(*self._shape, placement).remote(state_bytes=self._state_bytes,
                                                                         **self._worker_kwargs)
        self._held[dead].clear()  # the newcomer holds no state: every one is sent to it
        for batch in unfinished:
            if self._actor_failure == "drop":
                batch.lost = True
                batch.ref, batch.groups = None, []
                self.load[dead] -= batch.cost
            else:
                self._send(batch)

    def _consume(self, batch: _Batch, task_id: int) -> None:
        del self._batches[task_id]
        batch.unread.discard(task_id)
        ref, outstanding = self._params[batch.version]
        if outstanding <= 1:
            del self._params[batch.version]
        else:
            self._params[batch.version] = (ref, outstanding - 1)
        if batch.results is None and not batch.lost and not batch.unread:
            self.load[batch.actor] -= batch.cost
