"""A Flower ``Grid`` on raysim's simulated clock: the one interface through which a Flower
ServerApp reaches its clients (strategies call ``get_node_ids`` and ``send_and_receive``; the
legacy strategies go through the same interface, one message per call from their threads).

Each message is delivered to its node's ``ClientApp`` by raysim's executor (client actors on Ray,
or this process), with the node's ``Context``, kept here across rounds and replaced only by the
context of a delivered reply (a device that dropped out never finished). Time is simulated, as
for any raysim task (sim/cost/devices.py, FedScale's cost model): a message sent at ``t`` reaches the
node after the link latency and its arrays' bytes over the downlink, the node computes for the
examples its reply reports (``examples_of``: where each Flower API puts the count) at its
device's seconds per example, times the run config's local epochs for a train message and
``forward_fraction`` (forward passes only) for any other, and the reply's arrays go up the
uplink. A train or evaluate reply that reports no count ends the run (exit 1) rather than
computing for free. A node offline at ``t`` or dropping out (``[system] dropout``) gives no
reply; ``timeout`` is a simulated deadline past which a reply is dropped. ``send_and_receive``
returns at once with the replies sorted by node, and the clock moves to the last reply kept (or
to the deadline, when one was missed): no wall-clock sleep, no polling.

Determinism: message ids are a counter; every draw of a message (its dropout, and the seeds of
Python's, numpy's and torch's global generators on the node's side) derives from the seed and
its ``DrawKey``: the grid's own server-round number (the round rounds.parquet records, never a
field the app may leave empty: the Message API's strategies set no ``group_id``), the message
type and the node; node ids are fixed (``first_node`` + partition id). So each round draws
afresh, and a seed gives the same rounds whatever the actor packing.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from flwr.app import Context, Message, RecordDict
from flwr.common.constant import NUM_PARTITIONS_KEY, PARTITION_ID_KEY
from flwr.serverapp.grid import Grid
from flwr.supercore.run import Run

from raysim.seeding import Stream, derive_seed
from raysim.sim.kernel.clock import SimClock
from raysim.sim.cost.devices import Population
from raysim.sim.kernel.tasks import FlowerAppError

FIRST_NODE = 1000  # node ids are FIRST_NODE + partition id (1 is Flower's SuperLink)
TYPES = ("train", "evaluate", "query", "system")  # Flower's message categories, in a round's order
COUNTED = ("train", "evaluate")  # the categories whose replies must report the examples they computed
LEGACY_COUNTS = ("fitres.num_examples", "evaluateres.num_examples")  # a NumPyClient reply's count records
LEGACY_METRICS = ("fitres.metrics", "evaluateres.metrics")  # and its metrics (a ConfigRecord)


@dataclass(frozen=True)
class DrawKey:
    """What a message's random draws are keyed by: the grid's server round, its category's
    index in ``TYPES`` (``len(TYPES)`` for any other), the node (partition), and how many
    messages of that category the node already had this round (0 but for a ServerApp sending
    one node several in a round)."""

    round: int
    kind: int
    partition: int
    repeat: int

    def node_seed(self, seed: int) -> int:
        """The seed of the node's generators for this delivery."""
        return derive_seed(seed, Stream.FLOWER, self.round, self.kind, self.partition, self.repeat)

    def dropout_task(self, seed: int) -> int:
        """The one task number ``Population.dropout_time`` keys the node's dropout draw by (it
        adds the node itself)."""
        return derive_seed(seed, Stream.DROPOUT, self.round, self.kind, self.repeat)


@dataclass(frozen=True)
class GridDelivery:
    """One message for one node: what an executor hands its ClientApp, with the seed the node
    side seeds its generators from."""

    partition: int
    message: Message
    context: Context
    seed: int


Execute = Callable[[list[GridDelivery]], list[tuple[Message, Context]]]


@dataclass
class RoundLog:
    """What the messages of one server round did, for its rounds.parquet row: ``number`` is the
    grid's count of server rounds (1, 2, ...), ``label`` the ``group_id`` the strategy gave them."""

    number: int
    label: str
    rows: list[dict] = field(default_factory=list)
    ended: float = 0.0
    sent: Counter = field(default_factory=Counter)  # messages so far per (category, partition)

    def key(self, message: Message) -> DrawKey:
        """The next message's draw key (counts it)."""
        kind, partition = kind_of(message), partition_of(message)
        code = TYPES.index(kind) if kind in TYPES else len(TYPES)
        repeat = self.sent[code, partition]
        self.sent[code, partition] += 1
        return DrawKey(self.number, code, partition, repeat)


def answer(app: Callable[[Message, Context], Message], delivery: GridDelivery, *, name: str) -> tuple[Message, Context]:
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


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def reported(content: RecordDict | None) -> dict[str, float]:
    """A reply's numeric metrics, where each Flower API puts them: all its metric records (the
    Message API's; a NumPyClient's loss) and a NumPyClient's metrics dict (a ConfigRecord); its
    count records are ``examples_of``'s."""
    if content is None:
        return {}
    records = [r for name, r in content.metric_records.items() if name not in LEGACY_COUNTS]
    records += [r for name, r in content.config_records.items() if name in LEGACY_METRICS]
    return {key: float(value) for record in records for key, value in record.items() if _number(value)}


def examples_of(content: RecordDict | None, key: str) -> float | None:
    """The examples a reply reports, where each Flower API puts them: a NumPyClient's count is
    ``num_examples`` of its ``fitres.num_examples`` (``evaluateres.``) record; a Message-API
    reply's is ``key`` of its MetricRecord (``num-examples``, what the strategies weight by
    unless their ``weighted_by_key`` says otherwise). None when it reports none (or a value
    that is no count)."""
    if content is None:
        return None
    for name, record in content.metric_records.items():
        value = record.get("num_examples") if name in LEGACY_COUNTS else record.get(key)
        if _number(value) and math.isfinite(value) and value >= 0:
            return float(value)
    return None


class SimulatedGrid(Grid):
    """See the module's docstring. ``execute`` runs deliveries (in order, results in order);
    ``local_epochs``, ``examples_key`` and ``forward_fraction`` are ``[flower]``'s (FlowerConfig);
    ``on_round`` receives each finished server round's log."""

    def __init__(self, *, run_id: int, num_nodes: int, population: Population, execute: Execute, seed: int,
                 run_config: dict, local_epochs: str, examples_key: str, forward_fraction: float,
                 on_round: Callable[[RoundLog], None]):
        self._run = Run.create_empty(run_id)
        self.num_nodes, self.population, self.execute, self.seed = num_nodes, population, execute, seed
        self.run_config, self.local_epochs, self.on_round = dict(run_config), local_epochs, on_round
        self.examples_key, self.forward_fraction = examples_key, forward_fraction
        self.contexts = {p: Context(run_id=run_id, node_id=FIRST_NODE + p, state=RecordDict(),
                                    node_config={PARTITION_ID_KEY: p, NUM_PARTITIONS_KEY: num_nodes},
                                    run_config=dict(run_config)) for p in range(num_nodes)}
        self.clock = SimClock()  # no events: each call moves it to the last reply kept (or its deadline)
        self._counter = 0
        self._pending: dict[str, Message] = {}
        self._replies: dict[str, Message] = {}
        self._round: RoundLog | None = None
        self._rounds = 0
        self.failure: FlowerAppError | None = None
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
        """Closes the last server round (its row is written); raises the failure that ended the
        run, if a strategy's thread caught it (the legacy strategies count an exception in their
        thread pool as a failed client and go on)."""
        with self._lock:
            if self.failure is not None:
                raise self.failure
            if self._round is not None:
                self._close(self._round)
                self._round = None

    def _deliver(self, ids: Sequence[str], *, timeout: float | None) -> None:
        """Delivers a call's messages; the first failure ends the run, and every later call too."""
        if self.failure is not None:
            raise self.failure
        try:
            self._deliver_all([self._pending.pop(i) for i in ids], timeout=timeout)
        except FlowerAppError as exc:
            self.failure = exc
            raise

    def _deliver_all(self, messages: list[Message], *, timeout: float | None) -> None:
        if not messages:
            return
        start = self._start_of(messages[0])
        log = self._log(messages[0])
        keys = {m.metadata.message_id: log.key(m) for m in messages}
        online = [m for m in messages if self._profile(m).availability.online_at(start)]
        results = dict(zip((m.metadata.message_id for m in online),
                           self.execute([self._delivery(m, keys[m.metadata.message_id]) for m in online]))) if online else {}
        ends = []
        for message in messages:
            row, end = self._settle(message, keys[message.metadata.message_id],
                                    results.get(message.metadata.message_id), start, timeout)
            log.rows.append(row)
            ends.append(end)
        self.clock.advance_to(max(self.clock.now, *ends))
        log.ended = self.clock.now

    def _settle(self, message: Message, key: DrawKey, result: tuple[Message, Context] | None, start: float,
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
        examples = self._examples(message, reply, key.round)
        timing = self.population.timing(partition, start=start, samples=examples, epochs=self._passes(kind),
                                        model_bytes=row["bytes_down"], update_bytes=up)
        row.update(examples=examples, download_s=timing.download_s,
                   compute_s=timing.compute_s, upload_s=timing.upload_s)
        dropped = self.population.dropout_time(partition, key.dropout_task(self.seed), timing)
        if dropped is not None:
            return {**row, "status": "dropout", "arrived_at": float("nan"), "dropped_at": dropped}, waited
        if timeout is not None and timing.end > start + timeout:
            return {**row, "status": "late", "arrived_at": timing.end}, start + timeout
        reply.metadata.__dict__["_message_id"] = f"{message.metadata.message_id}r"
        self._replies[message.metadata.message_id] = reply
        self.contexts[partition] = context
        row.update(status="replied", arrived_at=timing.end, bytes_up=up, **{f"metric_{k}": v for k, v in metrics.items()})
        return row, timing.end

    def _examples(self, message: Message, reply: Message, round_number: int) -> int:
        """The examples a reply's node computed (``examples_of``). A train or evaluate reply
        reporting none ends the run: its node's compute would be free, its device's speed of no
        effect. Any other (a query) or an error reply without one computed nothing."""
        count = examples_of(reply.content if reply.has_content() else None, self.examples_key)
        if count is not None:
            return int(count)
        if kind_of(message) in COUNTED and not reply.has_error():
            raise FlowerAppError(
                f"node {message.metadata.dst_node_id} (partition {partition_of(message)}) replied to the "
                f"{message.metadata.message_type!r} message of round {round_number} without an example count: "
                f"raysim charges a node's compute by the examples its reply reports: '{self.examples_key}' in the "
                "reply's MetricRecord (or set flower.examples_key to the key the strategy weights by), or a "
                "NumPyClient's num_examples")
        return 0

    def _passes(self, kind: str) -> float:
        """Training passes per reported example: the run config's local epochs for a train
        message, forward passes only (``forward_fraction`` of a training pass) for any other."""
        return float(self.run_config.get(self.local_epochs, 1)) if kind == "train" else self.forward_fraction

    def _delivery(self, message: Message, key: DrawKey) -> GridDelivery:
        partition = partition_of(message)
        return GridDelivery(partition, message, self.contexts[partition], key.node_seed(self.seed))

    def _profile(self, message: Message):
        return self.population.profile(partition_of(message))

    def _start_of(self, message: Message) -> float:
        """When a call's messages leave: now, for a ServerApp's own call (its main thread); for the
        legacy strategies, which send a round's messages one per call from a thread pool, when
        the first of that round and type left, so they do not queue behind each other."""
        if threading.current_thread() is threading.main_thread():
            return self.clock.now
        key = (message.metadata.group_id, message.metadata.message_type)
        return self._group_start.setdefault(key, self.clock.now)

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
            self._rounds += 1
            self._round = RoundLog(self._rounds, group)
        return self._round

    def _close(self, log: RoundLog) -> None:
        """Hands a finished round on, its messages in (send time, node) order: the legacy
        strategies' threads deliver them in whatever order they run."""
        log.rows.sort(key=lambda row: (row["sent_at"], TYPES.index(row["message_type"]) if row["message_type"] in TYPES
                                       else len(TYPES), row["node_id"]))
        self.on_round(log)

