"""What crosses between the driver and the client workers: the run's training plan, the
clients' shards, tasks and their results.

Nothing here imports torch, so the driver, which only schedules, aggregates numpy vectors and
records results, never loads it (a lighter, faster-starting driver actor); the workers do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from raysim.algorithms.sgd import SGDConfig


@dataclass(frozen=True)
class TrainingPlan:
    """What every client task of a run shares: batch size, optimiser, seed, and the client
    algorithm: a name of ``models/algorithm.py:CLIENT_ALGORITHMS``, ``package.module:Name``, the
    class or object itself (handed to ``raysim.api.run``) or the client half of ``[algorithm]``
    (``algorithms/pair.py:ClientHalf``, its name and options), built with ``algorithm_options`` by
    each worker (``models/algorithm.py:build_algorithm``), which imports torch; this side never does."""

    batch_size: int
    sgd: SGDConfig
    seed: int
    algorithm: Any = "sgd"
    algorithm_options: Mapping[str, Any] = field(default_factory=dict)
    flipped_labels: frozenset[int] = frozenset()  # label-flip attackers train on y -> C - 1 - y
    num_classes: int = 0
    local_layers: tuple[str, ...] = ()  # personal heads' name prefixes (an EvalSlice's head fills them)
    # the learning task ([task] kind: a name of models/learning_task.py:TASK_KINDS, a user's
    # "package.module:Name" or the class itself), built with task_options by each worker
    task: Any = "classification"
    task_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientIndices:
    """All clients' index arrays, concatenated: client c owns indices[offsets[c]:offsets[c+1]]."""

    indices: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_parts(cls, parts: list[np.ndarray]) -> "ClientIndices":
        sizes = np.array([len(p) for p in parts], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        indices = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        return cls(indices=indices, offsets=offsets)

    def of(self, client_id: int) -> np.ndarray:
        return self.indices[self.offsets[client_id] : self.offsets[client_id + 1]]

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class TrainTask:
    task_id: int
    client_id: int
    seed_key: int  # keys the batch order: the dispatch number of the task
    epochs: int
    round: int = 0  # the round the update is for (the server steps taken when it was dispatched, + 1)
    state: Mapping[str, np.ndarray] = field(default_factory=dict)  # the client's own, from the store
    server: Mapping[str, np.ndarray] = field(default_factory=dict)  # the strategy's broadcast
    # which kept state ``state`` is: the id of the task that returned it (None: not known, e.g.
    # kept before a resume); an executor whose worker still holds that version need not send it
    state_version: int | None = None


@dataclass(frozen=True)
class ClientResult:
    task_id: int
    client_id: int
    num_samples: int
    steps: int
    mean_loss: float
    delta: np.ndarray
    wall_s: float
    state: Mapping[str, np.ndarray] | None = None  # the client's new state (None: unchanged)
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)  # for the server strategy
    metrics: Mapping[str, float] = field(default_factory=dict)


VECTOR_GROUP = 16  # clients per batch of models: big enough to amortise, small enough to balance


def group_tasks(tasks: Sequence[TrainTask], costs: Sequence[float], *, vectorize: bool) -> list[list[TrainTask]]:
    """Groups of tasks trained together; a pure function of the task list, so every executor
    (and any number of actors) forms the same groups and computes the same floats.

    Tasks of equal cost and epochs (hence equal data size) are chunked, in task order, into groups
    of at most VECTOR_GROUP; without ``vectorize`` every task is its own group.
    """
    if not vectorize:
        return [[t] for t in tasks]
    buckets: dict[tuple[float, int], list[TrainTask]] = {}
    for task, cost in zip(tasks, costs):
        buckets.setdefault((cost, task.epochs), []).append(task)
    groups = [bucket[i : i + VECTOR_GROUP] for bucket in buckets.values() for i in range(0, len(bucket), VECTOR_GROUP)]
    return sorted(groups, key=lambda g: g[0].task_id)


class FlowerAppError(RuntimeError):
    """A Flower app raised (or returned no Message): the run ends (exit 1) naming the app and,
    for a ClientApp, the node and the message (sim/bridges/flower_grid.py)."""


class ClientError(RuntimeError):
    """A client's local training raised; carries the client id and the original traceback."""

    def __init__(self, client_id: int, task_id: int, details: str):
        super().__init__(client_id, task_id, details)
        self.client_id = client_id
        self.task_id = task_id
        self.details = details

    def __str__(self) -> str:
        return f"client {self.client_id} (task {self.task_id}) failed during local training:\n{self.details}"
