"""Client algorithms, strategies and policies as a user's package writes them, for the tests of
the public protocols (named from scenarios as ``tests.user_code:Name``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from raysim.algorithms.strategy import Update
from raysim.models.algorithm import LocalResult, LocalTask
from raysim.sim.policies import Aggregate, Arrival, Dispatch, Failure, PolicyFacts


class CountingSGD:
    """Plain SGD with torch's optimizer; counts in its state how many of the client's tasks
    finished (its state is kept once a task finishes), and reports that count and its batches
    as metrics."""

    def __init__(self, lr_scale: float = 1.0):
        self.lr_scale = lr_scale

    def train(self, task: LocalTask) -> LocalResult:
        import torch

        optimizer = torch.optim.SGD(task.model.parameters(), lr=task.settings.sgd.lr * self.lr_scale)
        steps, total = 0, 0.0
        for x, y in task.batches():
            optimizer.zero_grad()
            loss = task.loss(task.model(x), y)
            loss.backward()
            optimizer.step()
            steps, total = steps + 1, total + loss.item()
        seen = task.state.get("seen", np.zeros(1, dtype=np.int64)) + 1
        return LocalResult(steps=steps, loss=total / max(steps, 1), state={"seen": seen},
                           metrics={"seen": float(seen[0]), "batches": float(steps)})


class FailsAtRound2(CountingSGD):
    def train(self, task: LocalTask) -> LocalResult:
        if task.round >= 2:
            raise RuntimeError("the user's bug")
        return super().train(task)


class NaNState(CountingSGD):
    def train(self, task: LocalTask) -> LocalResult:
        return LocalResult(steps=1, loss=0.0, state={"h": np.array([np.nan])})


class WrongDelta(CountingSGD):
    def train(self, task: LocalTask) -> LocalResult:
        return LocalResult(steps=1, loss=0.0, delta=np.zeros(3, dtype=np.float32))


class NoTrain:
    def fit(self, task):
        return None


class TrainsWithoutTask:
    def train(self):
        return None


class MeanOfDeltas:
    """FedAvg with a plain mean, keeping the running sum of every update it applied."""

    def __init__(self, server_lr: float = 1.0):
        self.server_lr = server_lr

    def init(self, params: np.ndarray) -> dict:
        return {"total": np.zeros(params.size), "steps": 0}

    def aggregate(self, params: np.ndarray, state: dict, updates: list[Update]) -> tuple:
        if not updates:
            return params, state, {}
        mean = np.mean([u.delta for u in updates], axis=0)
        moved = (params + self.server_lr * mean).astype(params.dtype)
        return moved, {"total": state["total"] + mean, "steps": state["steps"] + 1}, {"mean_norm": float(np.linalg.norm(mean))}


class RaisingStrategy(MeanOfDeltas):
    def aggregate(self, params, state, updates):
        raise ValueError("the user's strategy bug")


class NoAggregate:
    def init(self, params):
        return {}


class CountingPair:
    """CountingSGD and MeanOfDeltas as one ``[algorithm]`` object, one option for both halves."""

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def client(self) -> CountingSGD:
        return CountingSGD(lr_scale=self.scale)

    def server(self) -> MeanOfDeltas:
        return MeanOfDeltas(server_lr=self.scale)


class ClientOnlyPair:
    def client(self) -> CountingSGD:
        return CountingSGD()


class PairWithABadServer(CountingPair):
    def server(self) -> NoAggregate:
        return NoAggregate()


@dataclass(frozen=True, kw_only=True)
class SequentialPolicy:
    """One client at a time, its update applied on arrival (docs/architecture.md's example)."""

    kind: ClassVar[str] = "sequential"
    cohort: int = 1

    def build(self) -> "SequentialRounds":
        return SequentialRounds(self.cohort)


class SequentialRounds:
    def __init__(self, cohort: int):
        self.cohort = cohort

    def start(self, view) -> list:
        return [Dispatch(count=self.cohort)]

    def on_event(self, event, view) -> list:
        if isinstance(event, Arrival):
            return [Aggregate((event.task.task_id,)), Dispatch(count=1)]
        if isinstance(event, Failure):
            return [Dispatch(count=1)]
        return []


class NotADataclassPolicy:
    def build(self):
        return SequentialRounds(1)


class Diverges(CountingSGD):
    """A client that diverged: a non-finite update, loss and state (the server rejects it)."""

    def train(self, task: LocalTask) -> LocalResult:
        size = task.flat.layout.size
        return LocalResult(steps=1, loss=float("nan"), delta=np.full(size, np.nan, dtype=np.float32),
                           state={"seen": np.array([np.nan])})


def sensor_readings(seed: int, sites: int = 4, per_site: int = 30) -> dict:
    """A data set as a user's function returns it: readings of 3 sensors per site, a load to
    predict (a linear function of the readings plus a site-specific offset) and each row's site."""
    rng = np.random.default_rng(seed)
    site = np.repeat(np.arange(sites), per_site)
    x = rng.normal(size=(sites * per_site, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.3 * site + rng.normal(scale=0.1, size=len(site))
    test = rng.normal(size=(40, 3)).astype(np.float32)
    return {"train_x": x, "train_y": y, "test_x": test, "test_y": test @ np.array([1.0, -2.0, 0.5]),
            "train_client": np.array([f"site-{s}" for s in site])}


def misshapen_readings(seed: int) -> dict:
    data = sensor_readings(seed)
    return {**data, "test_x": data["test_x"][:, :2]}


class HuberTask:
    """A user's learning task: the Huber loss, scored by its mean and the share of predictions
    within ``tolerance`` of the target (higher is better)."""

    metrics = ("huber", "within")
    lower_is_better = frozenset({"huber"})
    labels = "value"

    def __init__(self, tolerance: float = 0.5):
        self.tolerance = tolerance

    def loss(self, outputs, targets):
        import torch.nn.functional as F

        return F.huber_loss(outputs.reshape(targets.shape), targets)

    def sums(self, outputs, targets):
        import torch.nn.functional as F

        predicted = outputs.reshape(targets.shape)
        return {"loss": float(F.huber_loss(predicted, targets, reduction="sum")),
                "within": int(((predicted - targets).abs() <= self.tolerance).sum()), "count": len(targets)}

    def scores(self, sums):
        return {"huber": sums["loss"] / sums["count"], "within": sums["within"] / sums["count"],
                "loss": sums["loss"] / sums["count"]}


@dataclass(frozen=True, kw_only=True)
class MixingPolicy(SequentialPolicy):
    """SequentialPolicy declaring what it does (``facts``): one update a step, mixed on its own."""

    def facts(self, cohort: int, population: int) -> PolicyFacts:
        return PolicyFacts(updates_per_step=1, tasks_per_round=self.cohort, mixes_one_update=True)


class SelectsBusyClients:
    """A selector that names clients it may not: the busy ones, or one past the population."""

    def select(self, count, view, draw):
        return sorted(view.busy)[:count] or [view.num_clients]


@dataclass(frozen=True)
class SelectsBusy:
    def build(self):
        return SelectsBusyClients()


@dataclass(frozen=True)
class NoSelectMethod:
    def build(self):
        return object()
