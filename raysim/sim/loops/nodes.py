"""Synchronous rounds without a central model: every node keeps its own model (by client id),
trains from it each round, and the topology combines the local models (gossip mixing in
``gossip.py``, edge and cloud averages in ``hierfavg.py``).

These topologies have no server that dispatches a cohort and waits for arrivals, so they do not
go through the event-driven driver; they use the same parts, executor and results. Each node's
training is submitted with its own start model as a one-off version (the executor's per-task
start-params mechanism, keyed ``-1 - task_id`` as the driver keys ``Task.start_params``) and
seeded by (round, client) exactly as the driver seeds round ``r``'s tasks, so with full
participation and weights that average everything the rounds equal FedAvg's. The simulated
round ends when the slowest node has its neighbours' (or its edge's) models; the phase-1
transport times every message and counts each node's traffic for ``network.parquet``.

The interface is the driver's (``advance``, ``snapshot``, ``restore``, ``view``, ``describe``,
``close``), so ``api.py`` runs either in-process or as a Ray actor without knowing which.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from raysim.models.layout import ParamLayout
from raysim.network.transport import Transport
from raysim.sim.state import checkpoint
from raysim.sim.kernel import table_rows
from raysim.sim.kernel.clock import SimClock
from raysim.sim.kernel.driver import Driver
from raysim.sim.kernel.evaluation import central_slices, summarise, test_columns
from raysim.sim.kernel.executor import ClientLost, Executor
from raysim.sim.kernel.parts import DriverParts
from raysim.sim.policies import ServerView
from raysim.sim.kernel.records import RoundReport
from raysim.sim.kernel.tasks import TrainTask


class NodeRounds:
    """The round loop shared by gossip and HierFAVG; subclasses give ``_transport``,
    ``_communicate`` and ``_combine`` (see the module's docstring). The constructor takes the
    driver's arguments (the scenario refuses ``[personal]`` and ``[contribution]`` with these
    topologies, so no stage is run)."""

    _CHECKPOINTED = ("models", "round", "clock", "_task_counter", "transport")

    def __init__(self, parts: DriverParts, *, initial_params: np.ndarray, layout: ParamLayout,
                 client_sizes: np.ndarray, test_size: int, executor_factory: Callable[[], Executor]):
        self.network, self.population, self.limits = parts.network, parts.population, parts.limits
        self.task = parts.task
        self.schedule, self.seed, self.model_bytes = parts.schedule, parts.seed, parts.exchange_bytes
        self.sizes = np.asarray(client_sizes)
        self.layout = layout
        self.models = np.repeat(np.asarray(initial_params)[None], len(self.sizes), axis=0)
        self.test_slices = central_slices(test_size)
        self.executor = executor_factory()
        self.round, self._task_counter = 0, 0
        self.clock = SimClock()  # no events: each round moves it to when its last message arrived
        self.transport: Transport = self._transport()
        self._run_started_wall = self._round_started_wall = time.perf_counter()

    # -- what a topology defines ---------------------------------------------------------------

    def _transport(self) -> Transport:
        raise NotImplementedError

    def _communicate(self, ready: np.ndarray, round_number: int) -> tuple[float, dict]:
        """Sends the round's messages, node i's local model ready at ``ready[i]``; returns when
        the round ends and its traffic (``traffic_since``, plus round-row ``columns``)."""
        raise NotImplementedError

    def _combine(self, local: np.ndarray, round_number: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """(every node's model for the next round, the model scored as the run's, extra columns)."""
        raise NotImplementedError

    def _node_columns(self) -> dict:
        """Columns that score the nodes' own models (gossip), on evaluated rounds."""
        return {}

    MODEL_CONTENT = ""  # what ``_average`` is, in words (the model file's metadata)
    CLIENT_CONTENT = ""  # what ``client_models`` holds, where a topology has them

    def _average(self) -> np.ndarray:
        """The nodes' models averaged as the topology scores them: the run's model as a result."""
        raise NotImplementedError

    def model_arrays(self) -> dict[str, np.ndarray]:
        """The run's model by entry name (``MODEL_CONTENT``), as the run's result."""
        return self.layout.named(self._average().astype(self.models.dtype))

    def client_models(self) -> dict[int, dict[str, np.ndarray]]:
        return {}

    # -- the loop ------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        limit = self.limits.sim_time_limit
        return self.round >= self.limits.rounds or bool(limit and self.clock.now >= limit)

    def view(self) -> ServerView:
        return ServerView(now=self.clock.now, version=self.round, clients_per_round=len(self.sizes),
                          population=len(self.sizes))

    def advance(self) -> list[RoundReport]:
        """One round of every node; [] once the run is finished."""
        if self.finished:
            return []
        round_number, start = self.round + 1, self.clock.now
        epochs = self.schedule.epochs
        compute = np.array([self.population.timing(c, start=start, samples=int(s), epochs=epochs, model_bytes=0,
                                                   update_bytes=0).compute_s for c, s in enumerate(self.sizes)])
        results = self._train(round_number)
        local = self.models.astype(np.float64)
        for client, result in enumerate(results):
            if result is not None:
                local[client] += result.delta
        end, traffic = self._communicate(start + compute, round_number)
        models, scored, extra = self._combine(local, round_number)
        self.models = models.astype(self.models.dtype)
        self.round = round_number
        self.clock.advance_to(end)
        rows = [self._client_row(c, r, start, compute[c], end, traffic) for c, r in enumerate(results)]
        return [RoundReport(self._round_row(scored, rows, extra, traffic), rows, network={"nodes": self._node_rows()},
                            model=self.model_arrays() if self.limits.keeps_model(round_number) else None)]

    def _train(self, round_number: int) -> list:
        """Each node trains from its own model, seeded by (round, client) as the driver's round
        ``round_number`` would; a node whose worker was lost (``actor_failure = "drop"``) keeps
        its model (None)."""
        ids = []
        for client, size in enumerate(self.sizes):
            task_id = self._task_counter
            self._task_counter += 1
            self.executor.submit(-1 - task_id, self.models[client],
                                 [TrainTask(task_id, client, round_number, self.schedule.epochs, round=round_number)],
                                 [int(size) * self.schedule.epochs])
            ids.append(task_id)
        results = []
        for task_id in ids:
            try:
                results.append(self.executor.result(task_id))
            except ClientLost:
                results.append(None)
        return results

    def _evaluating(self) -> bool:
        return self.round % self.limits.eval_every == 0 or self.finished

    def _scores(self, params: np.ndarray) -> dict[str, float]:
        """The task's metrics and mean loss of ``params`` on the test set."""
        return summarise(self.executor.evaluate(np.asarray(params, dtype=self.models.dtype), self.test_slices),
                         self.task)

    # -- records -------------------------------------------------------------------------------

    def _round_row(self, scored: np.ndarray, rows: list[dict], extra: dict, traffic: dict) -> dict:
        scores, nodes = summarise([], self.task), {}
        if self._evaluating():
            scores = self._scores(scored)
            nodes = self._node_columns()
        wall = time.perf_counter()
        applied = [r for r in rows if r["status"] == "applied"]
        samples = sum(r["samples"] for r in applied)
        row = table_rows.round_row(
            round=self.round, version=self.round, sim_time=self.clock.now, wall_time=wall - self._run_started_wall,
            round_wall_s=wall - self._round_started_wall, clients=len(applied), samples=samples,
            evaluation=test_columns(scores),
            train_loss=sum(r["train_loss"] * r["samples"] for r in applied) / samples if samples else float("nan"),
            bytes_down=table_rows.total(rows, "bytes_down"), bytes_up=table_rows.total(rows, "bytes_up"),
            statuses=[r["status"] for r in rows], failures=("lost",),
            extra={**traffic.get("columns", {}), **extra, **nodes})
        self._round_started_wall = wall
        return row

    def _client_row(self, client: int, result, start: float, compute_s: float, end: float, traffic: dict) -> dict:
        return table_rows.client_row(
            round=self.round, task_id=self._task_counter - len(self.sizes) + client, client_id=client,
            status="applied" if result is not None else "lost", staleness=0,
            samples=int(self.sizes[client]), epochs=self.schedule.epochs,
            steps=result.steps if result is not None else 0,
            train_loss=result.mean_loss if result is not None else float("nan"),
            start_time=start, end_time=end, compute_s=compute_s,
            wall_train_s=result.wall_s if result is not None else float("nan"),
            bytes_down=int(traffic["received"].get(client, 0)), bytes_up=int(traffic["sent"].get(client, 0)))

    def _node_rows(self) -> list[dict]:
        return [{"role": self._role(r["node"]), **r} for r in self.transport.node_rows()]

    def _role(self, node: int) -> str:
        return "client"

    # -- checkpoints and the rest of the driver's interface ------------------------------------

    @staticmethod
    def _progress(values: dict) -> checkpoint.Progress:
        return values["round"], float(values["clock"].now)

    def snapshot(self) -> bytes:
        """The nodes' models, the round and the transport as data (checkpoint.py)."""
        return checkpoint.snapshot(self)

    def restore(self, snapshot: bytes) -> None:
        """Continues after a checkpointed round: nothing is in flight between rounds. The
        snapshot is decoded against this driver (checkpoint.py): CheckpointError if it does not fit."""
        checkpoint.restore(self, snapshot)

    describe = Driver.describe

    def use_state_dir(self, directory) -> None:
        """Nothing to spill: nodes keep no client state (combinations.py refuses a user client
        algorithm on gossip and hierarchical topologies)."""

    def close(self) -> None:
        self.executor.shutdown()


def traffic_since(transport: Transport, before: dict[int, tuple[int, int]]) -> dict:
    """Bytes each node sent and received since ``before`` (node -> (bytes out, bytes in))."""
    sent, received = {}, {}
    for node, t in transport.traffic.items():
        out, into = before.get(node, (0, 0))
        sent[node], received[node] = t.bytes_out - out, t.bytes_in - into
    return {"sent": sent, "received": received}


def traffic_mark(transport: Transport) -> dict[int, tuple[int, int]]:
    return {node: (t.bytes_out, t.bytes_in) for node, t in transport.traffic.items()}
