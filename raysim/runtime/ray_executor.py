"""Client work on Ray actors: a pool of ``ClientActor`` actors, balanced per round.

Each model version is ``ray.put`` once and shared by every task trained from it. A round's
tasks, in groups trained together as a batch of models when vectorised (``group_tasks``), are
assigned to actors longest-first onto the least-loaded actor (expected cost = samples x
epochs), so a round with unequal clients still finishes together; each actor gets one call
per dispatch with its whole list. Results are collected in completion order with
``ray.wait``, so a failing client surfaces as soon as its actor reports, not when the driver
happens to ask for it. Evaluation slices are spread over the same actors.

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

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np
import ray
from ray.exceptions import RayActorError, RayTaskError

from raysim.runtime import WorkersLost
from raysim.sim.kernel.evaluation import EvalCounts, EvalSlice
from raysim.sim.kernel.executor import ClientLost
from raysim.sim.kernel.tasks import ClientError, ClientResult, TrainTask, group_tasks


class ClientActor:
    """The Ray actor around a ``ClientWorker``, which it builds inside its own process: whoever
    creates or replaces actors (the driver actor) then never imports torch or the models."""

    def __init__(self, **worker_kwargs: Any):
        from raysim.runtime.worker import ClientWorker

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

    def train(self, params: np.ndarray, groups: list[list[TrainTask]]) -> list[ClientResult]:
        return self.worker.train(params, groups)

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
    """One actor call: the tasks it trains and, once fetched, their results."""

    ref: Any
    actor: int
    version: int
    groups: list[list[TrainTask]]
    cost: float
    results: list[ClientResult] | None = None
    lost: bool = False  # its actor died and the failure policy drops the work
    tasks: list[TrainTask] = field(init=False)  # in the order the actor returns results
    position: dict[int, int] = field(init=False)  # task id -> index into tasks / results
    unread: set[int] = field(init=False)

    def __post_init__(self) -> None:
        self.tasks = [t for group in self.groups for t in group]
        self.position = {t.task_id: i for i, t in enumerate(self.tasks)}
        self.unread = set(self.position)


def start_workers(*, num_actors: int, num_cpus: float, num_gpus: float, worker_kwargs: dict[str, Any],
                  placements: Sequence[dict[str, Any]] = ()) -> list[Any]:
    """Starts the client actors without waiting for them, so they boot while other work goes on;
    actor i goes where ``placements[i]`` says (a bundle of a sweep trial's placement group)."""
    kwargs = _actor_kwargs(worker_kwargs, num_cpus=num_cpus, num_gpus=num_gpus)
    return [_actor_class(num_cpus, num_gpus, placements[i] if placements else {}).remote(**kwargs)
            for i in range(num_actors)]


def _actor_class(num_cpus: float, num_gpus: float, placement: dict[str, Any]) -> Any:
    return ray.remote(ClientActor).options(num_cpus=num_cpus, num_gpus=num_gpus, **placement)


def _actor_kwargs(worker_kwargs: dict[str, Any], *, num_cpus: float, num_gpus: float) -> dict[str, Any]:
    return {**worker_kwargs, "device": "cuda" if num_gpus > 0 else "cpu", "threads": max(1, int(num_cpus))}


def _spread(costs: Sequence[float], load: list[float]) -> dict[int, list[int]]:
    """Largest item first onto the least-loaded actor (ties: the earlier item, the lower actor);
    adds to ``load`` in place and returns each actor's item positions in assignment order."""
    shares: dict[int, list[int]] = {}
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        actor = min(range(len(load)), key=lambda a: (load[a], a))
        load[actor] += costs[i]
        shares.setdefault(actor, []).append(i)
    return shares


class RayExecutor:
    def __init__(self, *, actors: list[Any], num_cpus: float, num_gpus: float, worker_kwargs: dict[str, Any],
                 vectorize: bool = False, actor_failure: Literal["rerun", "drop"] = "rerun",
                 placements: Sequence[dict[str, Any]] = ()):
        """Takes over started actors (see ``start_workers``) and waits until they are ready; a
        replacement goes where the actor it replaces was placed (``placements``). ``vectorize``:
        equal-sized clients are trained as one batch of models (``group_tasks``)."""
        self._actor_failure = actor_failure
        self._placements = list(placements)
        self._shape = (num_cpus, num_gpus)
        self._worker_kwargs = _actor_kwargs(worker_kwargs, num_cpus=num_cpus, num_gpus=num_gpus)
        self._vectorize = vectorize
        self.actors = list(actors)
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
        groups = group_tasks(tasks, costs, vectorize=self._vectorize)  # in task order
        group_costs = [sum(cost_of[t.task_id] for t in g) for g in groups]
        for actor, share in _spread(group_costs, self.load).items():
            assigned = [groups[i] for i in share]
            batch = _Batch(ref=self.actors[actor].train.remote(ref, assigned), actor=actor, version=version,
                           groups=assigned, cost=sum(group_costs[i] for i in share))
            for task in batch.tasks:
                self._batches[task.task_id] = batch

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
        self.actors, self._batches, self._params = [], {}, {}

    def _collect_one(self) -> None:
        """Waits for whichever pending batch finishes first and fetches it (raising its error)."""
        pending = {id(b.ref): b for b in self._batches.values() if b.results is None and not b.lost}
        refs = [b.ref for b in pending.values()]
        ready, _ = ray.wait(refs, num_returns=1)
        batch = next(b for b in pending.values() if b.ref == ready[0])
        try:
            batch.results = ray.get(batch.ref)
        except RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, ClientError) else None
            if cause is not None:
                raise cause from None
            raise
        except RayActorError as exc:
            self._replace(batch.actor, exc)
            return
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
        self.restarts.append({"actor": dead, "tasks": sorted(t.task_id for b in unfinished for t in b.tasks),
                              "error": type(exc).__name__, "work": self._actor_failure})
        placement = self._placements[dead] if self._placements else {}
        self.actors[dead] = _actor_class(*self._shape, placement).remote(**self._worker_kwargs)
        for batch in unfinished:
            if self._actor_failure == "drop":
                batch.lost = True
                self.load[dead] -= batch.cost
            else:
                params_ref, _ = self._params[batch.version]
                batch.ref = self.actors[dead].train.remote(params_ref, batch.groups)

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
