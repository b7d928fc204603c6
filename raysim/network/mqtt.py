"""MQTT 3.1.1 (OASIS Standard, 29 October 2014) packet sizes, per-QoS packet sequences, and a
publish/subscribe broker on the :mod:`~raysim.network.transport`.

Sizes (spec sections 2.2.3, 3.3, 3.4-3.7): a fixed header of 1 byte plus the remaining length as a
1-4 byte varint (7 bits a byte, at most 268,435,455); PUBLISH adds a 2-byte topic length, the topic
(UTF-8), a 2-byte packet id when QoS > 0, then the payload; PUBACK, PUBREC, PUBREL and PUBCOMP are
4 bytes each. QoS applies per hop (publisher -> broker, broker -> each subscriber) and the QoS
delivered to a subscriber is min(publish QoS, subscription QoS) (section 3.8.4), so one QoS-2
publish to k QoS-2 subscribers is 4 + 4k packets, and the broker's egress is k times the payload:
counting broker bytes once instead of once per subscriber is the pitfall this model avoids.

The broker forwards a PUBLISH as soon as it has received it (the spec's "Method B" allows onward
delivery before PUBREL) after a per-message processing overhead on one serial CPU, so a broker can
become the bottleneck by bandwidth (its NIC is a shared node of the transport) or by message rate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from raysim.network.transport import Message, SerialQueue, Transport

MAX_REMAINING_LENGTH = 268_435_455
ACK_SIZE = 4
# The packets of one hop at each QoS, in order; PUBLISH and PUBREL go sender -> receiver, the rest back.
HOP_PACKETS = {0: ("PUBLISH",), 1: ("PUBLISH", "PUBACK"), 2: ("PUBLISH", "PUBREC", "PUBREL", "PUBCOMP")}
FORWARD = frozenset({"PUBLISH", "PUBREL"})


def remaining_length_size(remaining: int) -> int:
    """Bytes of the varint that encodes ``remaining`` (1 up to 127, 2 up to 16,383, ...)."""
    if not 0 <= remaining <= MAX_REMAINING_LENGTH:
        raise ValueError(f"an MQTT packet's remaining length must be in 0..{MAX_REMAINING_LENGTH}, got {remaining}")
    size = 1
    while remaining > 127:
        remaining >>= 7
        size += 1
    return size


def publish_size(topic: str, payload_bytes: int, qos: int) -> int:
    """Wire bytes of one PUBLISH: fixed header + 2 + len(topic) + (2 if QoS > 0) + payload."""
    _check_qos(qos)
    remaining = 2 + len(topic.encode("utf-8")) + (2 if qos else 0) + payload_bytes
    return 1 + remaining_length_size(remaining) + remaining


def packet_size(kind: str, topic: str, payload_bytes: int, qos: int) -> int:
    return publish_size(topic, payload_bytes, qos) if kind == "PUBLISH" else ACK_SIZE


def publish_packet_count(qos: int, subscription_qos: Sequence[int]) -> int:
    """Packets one publish costs end to end: its own hop plus one hop per matching subscriber,
    each at the QoS delivered to it."""
    _check_qos(qos)
    return len(HOP_PACKETS[qos]) + sum(len(HOP_PACKETS[min(qos, s)]) for s in subscription_qos)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a subscription filter matches a topic: ``+`` one level, ``#`` all remaining levels."""
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(wanted) == len(levels)


def _check_qos(qos: int) -> None:
    if qos not in HOP_PACKETS:
        raise ValueError(f"qos must be 0, 1 or 2, got {qos}")


@dataclass
class Delivery:
    """One subscriber's copy of a publish: the PUBLISH as it reached the subscriber, and when the
    hop's handshake completed (equal to the PUBLISH's arrival at QoS 0)."""

    message: Message
    completed: float
    qos: int


@dataclass
class Broker:
    """A broker node on a transport. Make ``node`` a shared node of the transport to give the
    broker's NIC its own bandwidth queue; ``overhead_s`` is its processing time per PUBLISH
    handled (in or out), served one at a time."""

    transport: Transport
    node: int
    overhead_s: float = 0.0
    subscriptions: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    packets: Counter = field(default_factory=Counter)  # (topic, kind, qos) -> packets
    _cpu: SerialQueue = field(default_factory=SerialQueue, init=False, repr=False)

    def subscribe(self, client: int, topic_filter: str, qos: int) -> None:
        _check_qos(qos)
        self.subscriptions.setdefault(client, []).append((topic_filter, qos))

    def subscribers(self, topic: str) -> list[tuple[int, int]]:
        """(client, subscription QoS) for each client with a matching filter; a client matched
        by several filters gets one copy at the highest of their QoS (section 3.3.5)."""
        found = {}
        for client, filters in self.subscriptions.items():
            levels = [qos for f, qos in filters if topic_matches(f, topic)]
            if levels:
                found[client] = max(levels)
        return sorted(found.items())

    def publish(self, source: int, topic: str, payload_bytes: int, qos: int, at: float) -> list[Delivery]:
        """``source`` publishes at time ``at``; returns each subscriber's delivery (the publisher
        itself, if subscribed, gets its copy like any other subscriber)."""
        inbound = self._hop(source, self.node, topic, payload_bytes, qos, at)
        ready = self._cpu.book(inbound.message.arrival, self.overhead_s)
        deliveries = []
        for client, sub_qos in self.subscribers(topic):
            start = self._cpu.book(ready, self.overhead_s)
            deliveries.append(self._hop(self.node, client, topic, payload_bytes, min(qos, sub_qos), start))
        return deliveries

    def _hop(self, sender: int, receiver: int, topic: str, payload_bytes: int, qos: int, at: float) -> Delivery:
        """One hop's packet sequence, each packet sent when the one before it arrived."""
        first, t = None, at
        for kind in HOP_PACKETS[qos]:
            src, dst = (sender, receiver) if kind in FORWARD else (receiver, sender)
            message = self.transport.send(src, dst, packet_size(kind, topic, payload_bytes, qos), t, kind)
            self.packets[(topic, kind, qos)] += 1
            first = first or message
            t = message.arrival
        return Delivery(first, t, qos)
