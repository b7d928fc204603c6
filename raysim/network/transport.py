"""One transport on the simulated clock: every message has a source, a destination, a size, a
send time and an arrival time computed from the links at both ends.

The model (R, a fluid approximation in the spirit of SimGrid's flow-level network models):

* each node has a :class:`Link` (one-way latency, uplink and downlink bandwidth);
* a message between two ordinary nodes streams at the slower of the sender's uplink and the
  receiver's downlink, and pays both latencies once, after the bytes have gone (queues see the
  send time); with the server at zero latency and infinite
  bandwidth this is exactly the star timing (``sim/cost/devices.py``: latency + 8 B / client link);
* a *shared* node (a server NIC, an MQTT broker) also owns a FIFO queue per direction with its own
  bandwidth: every byte it sends or receives is serialised through that queue, so ``m`` uploads of
  ``B`` bytes to it finish no earlier than ``m * 8 B / beta`` after they start. That is the
  bottleneck the reference (``shared/reference/network.md``, broker section) asks to see in
  simulated time.

Messages enter a queue at their send time and use its idle time from then on, never delaying a
message booked before them (for sends made in time order that is plain FIFO), so callers that
learn of messages out of time order (acknowledgements in an MQTT handshake) still get a
work-conserving queue. Counters per node and an optional full message log give the per-run
message counts and bytes the issue asks for.

:func:`transfer_s` is raysim's one transfer-time formula: the transport, the device profiles'
task timing (``sim/cost/``), the vertical run's phases and the privacy protocols' round trips all
charge a message through it. It lives on this floor, the lowest one all of them import.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from dataclasses import asdict, dataclass


def transfer_s(nbytes: float, bps: float, latency_s: float = 0.0) -> float:
    """Seconds until ``nbytes`` sent over a link of ``bps`` bit/s and one-way ``latency_s`` have
    all arrived: ``latency + 8 B / bandwidth`` (FedScale's cost model, arXiv:2105.11367).

    Written in this one order, ``latency_s + (8 * nbytes) / bps``: floating-point addition is not
    associative, and every shipped scenario's tables are compared bit for bit across refactors.
    With no latency the sum adds 0.0, which changes no non-negative time."""
    return latency_s + 8 * nbytes / bps


def mbps_to_bps(mbps: float) -> float:
    """A configured bandwidth in Mbit/s (every ``*_mbps`` key) as the bit/s links compute with."""
    return mbps * 1e6


@dataclass(frozen=True)
class Link:
    """One node's access link: one-way latency (s) and bandwidth (bit/s) each way."""

    latency_s: float = 0.0
    uplink_bps: float = math.inf
    downlink_bps: float = math.inf

    def __post_init__(self) -> None:
        if not self.latency_s >= 0:
            raise ValueError(f"latency_s must be >= 0, got {self.latency_s}")
        for name in ("uplink_bps", "downlink_bps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Message:
    """One message as it crossed the network; ``kind`` labels it (``PUBLISH``, ``model``, ...)."""

    source: int
    destination: int
    bytes: int
    send: float
    arrival: float
    kind: str = ""


class SerialQueue:
    """A serial resource (a NIC direction, a broker's CPU) as sorted, merged busy intervals.

    A booking never moves an earlier one: it takes the idle time at or after its start, in pieces
    if it must (a NIC interleaves packets), until it has its whole duration. For bookings made in
    time order this is plain FIFO; bookings learnt out of order (an acknowledgement booked before
    an upload that was sent earlier) still leave no idle time while work waits."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def book(self, at: float, seconds: float) -> float:
        """Reserves ``seconds`` of idle time from ``at`` on; returns when the last of it ends."""
        if seconds <= 0:
            return at
        first = j = bisect_right(self.ends, at)  # intervals before ``first`` end by ``at``
        cursor, remaining, start = at, seconds, None
        while True:
            gap_end = self.starts[j] if j < len(self.starts) else math.inf
            if cursor < gap_end:
                start = cursor if start is None else start
                if gap_end - cursor >= remaining:
                    cursor += remaining
                    break
                remaining -= gap_end - cursor
            cursor = max(cursor, self.ends[j])
            j += 1
        start = min([start, *self.starts[first:j]])
        if first > 0 and self.ends[first - 1] >= start:  # touches the interval before
            first -= 1
            start = self.starts[first]
        if j < len(self.starts) and self.starts[j] <= cursor:  # touches the interval after
            j += 1
        self.starts[first:j] = [start]
        self.ends[first:j] = [max(cursor, self.ends[j - 1]) if j > first else cursor]
        return cursor


@dataclass
class NodeTraffic:
    """What one node sent and received over a run."""

    messages_out: int = 0
    messages_in: int = 0
    bytes_out: int = 0
    bytes_in: int = 0


class Transport:
    """Computes each message's arrival and counts traffic per node.

    ``links`` maps node -> :class:`Link` (nodes not named get ``default``); ``shared`` names the
    nodes whose NIC is a queue (server, broker, edge aggregators); ``log`` keeps every message
    for :meth:`rows`.
    """

    def __init__(self, links: dict[int, Link] | None = None, *, default: Link = Link(),
                 shared: tuple[int, ...] = (), log: bool = False):
        self.links = dict(links or {})
        self.default = default
        self._egress = {node: SerialQueue() for node in shared}
        self._ingress = {node: SerialQueue() for node in shared}
        self.traffic: dict[int, NodeTraffic] = {}
        self.kinds: Counter[str] = Counter()
        self.log: list[Message] | None = [] if log else None

    def link(self, node: int) -> Link:
        return self.links.get(node, self.default)

    def send(self, source: int, destination: int, nbytes: int, at: float, kind: str = "") -> Message:
        """Sends ``nbytes`` at simulated time ``at``; returns the message with its arrival time."""
        if nbytes < 0:
            raise ValueError(f"a message cannot have {nbytes} bytes")
        src, dst = self.link(source), self.link(destination)
        done = at + transfer_s(nbytes, min(src.uplink_bps, dst.downlink_bps))
        if source in self._egress:
            done = max(done, self._egress[source].book(at, transfer_s(nbytes, src.uplink_bps)))
        if destination in self._ingress:
            done = max(done, self._ingress[destination].book(at, transfer_s(nbytes, dst.downlink_bps)))
        message = Message(source, destination, int(nbytes), at, done + src.latency_s + dst.latency_s, kind)
        self._count(message)
        return message

    def _count(self, message: Message) -> None:
        out = self.traffic.setdefault(message.source, NodeTraffic())
        out.messages_out += 1
        out.bytes_out += message.bytes
        into = self.traffic.setdefault(message.destination, NodeTraffic())
        into.messages_in += 1
        into.bytes_in += message.bytes
        self.kinds[message.kind] += 1
        if self.log is not None:
            self.log.append(message)

    def node_rows(self) -> list[dict]:
        """One row per node that sent or received anything: its message and byte counts."""
        return [{"node": node, **asdict(t)} for node, t in sorted(self.traffic.items())]

    def rows(self) -> list[dict]:
        """The full messages table (source, destination, bytes, send, arrival, kind)."""
        if self.log is None:
            raise ValueError("the transport was built with log=False: no message table was kept")
        return [asdict(m) for m in self.log]

