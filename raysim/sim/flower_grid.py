"""A Flower ``Grid`` on raysim's simulated clock: the one interface through which a Flower
ServerApp reaches its clients (strategies call ``get_node_ids`` and ``send_and_receive``; the
legacy strategies go through the same interface, one message per call from their threads).

Each message is delivered to its node's ``ClientApp`` by raysim's executor (client actors on Ray,
or this process), with the node's ``Context``, kept here across rounds and replaced only by the
context of a delivered reply (a device that dropped out never finished). Time is simulated, as
for any raysim task (sim/system.py, FedScale's cost model): a message sent at ``t`` reaches the
node after the link latency and its arrays' bytes over the downlink, the node computes for the
examples it reports (``num-examples`` of its reply, times the run config's local epochs for a
train message) at its device's seconds per example, and the reply's arrays go up the uplink. A
node offline at ``t`` or dropping out (``[system] dropout``, drawn from the seed, the node, the
round and the message type) gives no reply; ``timeout`` is a simulated deadline past which a
reply is dropped. ``send_and_receive`` returns at once with the replies sorted by node, and the
clock moves to the last reply kept (or to the deadline, when one was missed): no wall-clock
sleep, no polling.

Determinism: message ids are a counter, each delivery seeds Python's, numpy's and torch's
global generators from (seed, round, message type, node) on the node's side, and the node ids
are fixed (``first_node`` + partition id), so a seed gives the same rounds whatever the actor
packing.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from flwr.app import Context, Message, RecordDict
from flwr.common.constant import NUM_PARTITIONS_KEY, PARTITION_ID_KEY
from flwr.serverapp.grid import Grid
from flwr.supercore.run import Run

from raysim.seeding import Stream, derive_seed
from raysim.sim.system import Population
from raysim.sim.tasks import FlowerAppError

FIRST_NODE = 1000  # node ids are FIRST_NODE + partition id (1 is Flower's SuperLink)
TYPES = ("train", "evaluate", "query")


@dataclass(frozen=True)
class Delivery:
    """One message for one node: what an executor hands its ClientApp, with the seed the node
    side seeds its generators from."""

    partition: int
    message: Message
    context: Context
    seed: int


Execute = Callable[[list[Delivery]], list[tuple[Message, Context]]]


@dataclass
class RoundLog:
    """What the messages of one server round (one ``group_id``) did, for its rounds.parquet row."""

    label: str
    rows: list[dict] = field(default_factory=list)
    ended: float = 0.0


def answer(app: Callable[[Message, Context], Message], delivery: Delivery, *, name: str) -> tuple[Message, Context]:
    """Runs ``app`` on one delivery, on the node's side: Python's, numpy's and torch's global
    generators seeded from the delivery first (Flower apps draw from them), so a reply does not
    depend on which actor or process computed it. The message and the context are the node's own
    copies, as on an actor: Flower's strategies send one content object to every node, and a
    context changed by a node whose reply is then lost must stay as it was (the grid keeps the
    returned one only for a delivered reply)."""
    import copy
    import random
    import traceback

    import numpy as np
    import torch

    random.seed(delivery.seed)
    np.random.seed(delivery.seed % 2**32)
    torch.manual_seed(delivery.seed)
    message, context = copy.deepcopy(delivery.message), copy.deepcopy(delivery.context)
    metadata = message.metadata
    try:
        reply = app(message, context)
    except Exception as exc:  # the user's app: any failure ends the run, named
        raise FlowerAppError(f"flower.client_app '{name}' raised on node {metadata.dst_node_id} (partition "
                             f"{delivery.partition}) for the {metadata.message_type!r} message of group "
                             f"{metadata.group_id!r}:\n{traceback.format_exc()}") from exc
    if not isinstance(reply, Message):
        raise FlowerAppError(f"flower.client_app '{name}' returned a {type(reply).__name__} for the "
                             f"{metadata.message_type!r} message on node {metadata.dst_node_id}: it must return a "
                             "Message (Message(content, reply_to=msg))")
    return reply, context


def partition_of(message: Message) -> int:
    """The partition (raysim client) a message goes to: its node id less ``FIRST_NODE``."""
    return message.metadata.dst_node_id - FIRST_NODE


def kind_of(message: Message) -> str:
    """A message's category ("train", "evaluate", "query"), without its action."""
    return message.metadata.message_type.split(".")[0]


def payload_bytes(content: RecordDict | None) -> int:
    """The bytes of a message's arrays, as Flower serialises them (the records that matter on a link)."""
    if content is None:
        return 0
    return sum(len(array.data) for record in content.array_records.values() for array in record.values())


def reported(content: RecordDict | None) -> dict[str, float]:
    """A reply's numeric metrics, all its metric records together."""
    if content is None:
        return {}
    return {key: float(value) for record in content.metric_records.values() for key, value in record.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


class SimulatedGrid(Grid):
    """See the module's docstring. ``execute`` runs deliveries (in order, results in order);
    ``on_round`` receives each finished server round's log."""

    def __init__(self, *, run_id: int, num_nodes: int, population: Population, execute: Execute, seed: int,
                 run_config: dict, local_epochs: str, on_round: Callable[[RoundLog], None]):
        self._run = Run.create_empty(run_id)
        self.num_nodes, self.population, self.execute, self.seed = num_nodes, population, execute, seed
        self.run_config, self.local_epochs, self.on_round = dict(run_config), local_epochs, on_round
        self.contexts = {p: Context(run_id=run_id, node_id=FIRST_NODE + p, state=RecordDict(),
                                    node_config={PARTITION_ID_KEY: p, NUM_PARTITIONS_KEY: num_nodes},
                                    run_config=dict(run_config)) for p in range(num_nodes)}
        self.now = 0.0
        self._counter = 0
        self._pending: dict[str, Message] = {}
        self._replies: dict[str, Message] = {}
        self._round: RoundLog | None = None
        self._group_start: dict[tuple[str, str], float] = {}
        self._lock = threading.RLock()  # the legacy strategies call from a thread pool

    # -- Flower's Grid ---------------------------------------------------------------------------

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return [FIRST_NODE + p for p in range(self.num_nodes)]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        with self._lock:
            for message in messages:
                if not 0 <= partition_of(message) < self.num_nodes:
                    raise ValueError(f"message to node {message.metadata.dst_node_id}, which is none of this "
                                     f"grid's nodes ({FIRST_NODE} to {FIRST_NODE + self.num_nodes - 1})")
                self._counter += 1
                message.metadata.__dict__["_message_id"] = f"m{self._counter}"
                self._pending[message.metadata.message_id] = message
                ids.append(message.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Delivers what is still pending among ``message_ids`` (no deadline) and returns the
        replies that arrived; a lost message never has one."""
        wanted = list(message_ids)
        with self._lock:
            self._deliver([i for i in wanted if i in self._pending], timeout=None)
            return [self._replies.pop(i) for i in wanted if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        with self._lock:
            ids = list(self.push_messages(messages))
            self._deliver(ids, timeout=timeout)
            replies = [self._replies.pop(i) for i in ids if i in self._replies]
        return sorted(replies, key=lambda reply: reply.metadata.src_node_id)

    # -- the simulated delivery ------------------------------------------------------------------

    def finish(self) -> None:
        """Closes the last server round (its row is written)."""
        with self._lock:
            if self._round is not None:
                self._close(self._round)
                self._round = None

    def _deliver(self, ids: Sequence[str], *, timeout: float | None) -> None:
        messages = [self._pending.pop(i) for i in ids]
        if not messages:
            return
        start = self._start_of(messages[0])
        log = self._log(messages[0])
        online = [m for m in messages if self._profile(m).availability.online_at(start)]
        results = dict(zip((m.metadata.message_id for m in online),
                           self.execute([self._delivery(m) for m in online]))) if online else {}
        ends = []
        for message in messages:
            row, end = self._settle(message, results.get(message.metadata.message_id), start, timeout)
            log.rows.append(row)
            ends.append(end)
        self.now = max(self.now, *ends)
        log.ended = self.now

    def _settle(self, message: Message, result: tuple[Message, Context] | None, start: float,
                timeout: float | None) -> tuple[dict, float]:
        """Times one message and decides its fate; keeps a delivered reply and the node's new context."""
        partition, kind = partition_of(message), kind_of(message)
        row = {"node_id": message.metadata.dst_node_id, "client_id": partition, "message_type": kind,
               "sent_at": start, "bytes_down": payload_bytes(message.content), "bytes_up": 0, "examples": 0}
        waited = start + timeout if timeout is not None else start  # when the server gives up on a lost reply
        if result is None:
            return {**row, "status": "offline", "arrived_at": float("nan")}, waited
        reply, context = result
        content = reply.content if reply.has_content() else None
        metrics, up = reported(content), payload_bytes(content)
        epochs = float(self.run_config.get(self.local_epochs, 1)) if kind == "train" else 1.0
        examples = int(metrics.get("num-examples", 0))
        timing = self.population.timing(partition, start=start, samples=examples, epochs=epochs,
                                        model_bytes=row["bytes_down"], update_bytes=up)
        row.update(examples=examples, download_s=timing.download_s,
                   compute_s=timing.compute_s, upload_s=timing.upload_s)
        dropped = self.population.dropout_time(partition, self._task_key(message), timing)
        if dropped is not None:
            return {**row, "status": "dropout", "arrived_at": float("nan"), "dropped_at": dropped}, waited
        if timeout is not None and timing.end > start + timeout:
            return {**row, "status": "late", "arrived_at": timing.end}, start + timeout
        reply.metadata.__dict__["_message_id"] = f"{message.metadata.message_id}r"
        self._replies[message.metadata.message_id] = reply
        self.contexts[partition] = context
        row.update(status="replied", arrived_at=timing.end, bytes_up=up, **{f"metric_{k}": v for k, v in metrics.items()})
        return row, timing.end

    def _delivery(self, message: Message) -> Delivery:
        partition = partition_of(message)
        return Delivery(partition, message, self.contexts[partition],
                        derive_seed(self.seed, Stream.FLOWER, self._task_key(message), partition))

    def _task_key(self, message: Message) -> int:
        """(round, message type) as one number: what dropout draws and the node's seeds are keyed by."""
        return zlib.crc32(f"{message.metadata.group_id}/{message.metadata.message_type}".encode())

    def _profile(self, message: Message):
        return self.population.profile(partition_of(message))

    def _start_of(self, message: Message) -> float:
        """When a call's messages leave: now, for a ServerApp's own call (its main thread); for the
        legacy strategies, which send a round's messages one per call from a thread pool, when
        the first of that round and type left, so they do not queue behind each other."""
        if threading.current_thread() is threading.main_thread():
            return self.now
        key = (message.metadata.group_id, message.metadata.message_type)
        return self._group_start.setdefault(key, self.now)

    def _log(self, message: Message) -> RoundLog:
        """The server round a call belongs to: its ``group_id`` when the strategy sets one (the
        legacy strategies: the round number); else (the Message API's strategies set none) a new
        round starts with each train call, or with a call of a type the round has had already."""
        group, kind = message.metadata.group_id, kind_of(message)
        current = self._round
        if group:
            fresh = current is None or current.label != group
        else:
            fresh = current is None or kind == "train" or kind in {r["message_type"] for r in current.rows}
        if fresh:
            if current is not None:
                self._close(current)
            self._round = RoundLog(group)
        return self._round

    def _close(self, log: RoundLog) -> None:
        """Hands a finished round on, its messages in (send time, node) order: the legacy
        strategies' threads deliver them in whatever order they run."""
        log.rows.sort(key=lambda row: (row["sent_at"], TYPES.index(row["message_type"]) if row["message_type"] in TYPES
                                       else len(TYPES), row["node_id"]))
        self.on_round(log)

