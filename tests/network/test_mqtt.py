"""MQTT 3.1.1 packet sizes and counts, and the broker as a bottleneck in simulated time."""

from __future__ import annotations

import pytest

from raysim.network.mqtt import (ACK_SIZE, Broker, publish_packet_count, publish_size, remaining_length_size,
                                 topic_matches)
from raysim.network.transport import Link, Transport

BROKER = 0


@pytest.mark.parametrize("remaining, size", [(0, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3),
                                             (2_097_151, 3), (2_097_152, 4), (268_435_455, 4)])
def test_the_remaining_length_varint(remaining: int, size: int) -> None:
    assert remaining_length_size(remaining) == size


def test_packets_above_the_cap_are_refused() -> None:
    with pytest.raises(ValueError, match="268435455"):
        publish_size("t", 268_435_455, 0)


@pytest.mark.parametrize("topic, payload, qos, size", [
    ("a/b", 10, 0, 1 + 1 + 2 + 3 + 10),
    ("a/b", 10, 1, 1 + 1 + 2 + 3 + 2 + 10),
    ("fl/model", 1_000_000, 2, 1 + 3 + 2 + 8 + 2 + 1_000_000),  # 1,000,012 needs a 3-byte varint
    ("é", 0, 0, 1 + 1 + 2 + 2),  # the topic's UTF-8 bytes, not its characters
])
def test_publish_size(topic: str, payload: int, qos: int, size: int) -> None:
    assert publish_size(topic, payload, qos) == size


@pytest.mark.parametrize("k", [0, 1, 3, 10])
def test_one_qos2_publish_to_k_subscribers_is_4_plus_4k_packets(k: int) -> None:
    assert publish_packet_count(2, [2] * k) == 4 + 4 * k
    assert publish_packet_count(2, [0] * k) == 4 + k  # delivered QoS = min(publish, subscription)
    assert publish_packet_count(1, [2] * k) == 2 + 2 * k


@pytest.mark.parametrize("filter_, topic, match", [
    ("a/b", "a/b", True), ("a/+", "a/b", True), ("a/+", "a/b/c", False), ("a/#", "a/b/c", True),
    ("#", "a", True), ("+/b", "a/b", True), ("a/b", "a/c", False), ("a/b/c", "a/b", False)])
def test_topic_wildcards(filter_: str, topic: str, match: bool) -> None:
    assert topic_matches(filter_, topic) is match


@pytest.mark.parametrize("k", [1, 4])
def test_broker_fan_out_counts_every_packet_and_every_subscribers_bytes(k: int) -> None:
    transport = Transport()
    broker = Broker(transport, BROKER)
    for client in range(2, 2 + k):
        broker.subscribe(client, "fl/model", 2)
    deliveries = broker.publish(1, "fl/model", 1000, qos=2, at=0.0)
    assert [d.message.destination for d in deliveries] == list(range(2, 2 + k))
    assert sum(broker.packets.values()) == 4 + 4 * k
    assert {kind: n for (_, kind, _), n in broker.packets.items()} == {
        "PUBLISH": 1 + k, "PUBREC": 1 + k, "PUBREL": 1 + k, "PUBCOMP": 1 + k}
    size = publish_size("fl/model", 1000, 2)
    traffic = transport.traffic[BROKER]
    assert traffic.bytes_in == size + ACK_SIZE + k * 2 * ACK_SIZE  # PUBLISH, PUBREL in; PUBREC, PUBCOMP per subscriber
    assert traffic.bytes_out == k * size + 2 * ACK_SIZE + k * ACK_SIZE
    assert traffic.messages_in + traffic.messages_out == 4 + 4 * k


def test_a_subscriber_with_two_matching_filters_gets_one_copy_at_the_higher_qos() -> None:
    broker = Broker(Transport(), BROKER)
    broker.subscribe(5, "fl/+", 0)
    broker.subscribe(5, "fl/#", 1)
    (delivery,) = broker.publish(1, "fl/model", 10, qos=2, at=0.0)
    assert delivery.qos == 1


def test_the_handshake_completes_after_the_round_trips() -> None:
    transport = Transport(default=Link(latency_s=0.5))
    broker = Broker(transport, BROKER)
    broker.subscribe(2, "t", 2)
    (delivery,) = broker.publish(1, "t", 0, qos=2, at=0.0)
    assert delivery.message.arrival == pytest.approx(2.0)  # publisher -> broker, broker -> subscriber
    assert delivery.completed == pytest.approx(2.0 + 3 * 1.0)  # PUBREC, PUBREL, PUBCOMP


def test_per_message_overhead_is_served_one_at_a_time() -> None:
    broker = Broker(Transport(), BROKER, overhead_s=0.01)
    for client in range(2, 7):
        broker.subscribe(client, "t", 0)
    deliveries = broker.publish(1, "t", 100, qos=0, at=0.0)
    assert [d.message.arrival for d in deliveries] == pytest.approx([0.01 * (i + 2) for i in range(5)])


def simulated_round(m: int, payload: int, broker_bps: float) -> float:
    """The server publishes the model to m clients; each client publishes its update as soon as it
    has the model; returns when the last update reaches the server (node 1)."""
    transport = Transport({BROKER: Link(0.001, broker_bps, broker_bps)}, default=Link(0.01, 1e12, 1e12),
                          shared=(BROKER,))
    broker = Broker(transport, BROKER)
    broker.subscribe(1, "update/+", 1)
    clients = range(2, 2 + m)
    for client in clients:
        broker.subscribe(client, "model", 1)
    received = broker.publish(1, "model", payload, qos=1, at=0.0)
    uploads = [broker.publish(d.message.destination, f"update/{d.message.destination}", payload, qos=1,
                              at=d.message.arrival) for d in sorted(received, key=lambda d: d.message.arrival)]
    return max(d.message.arrival for delivered in uploads for d in delivered)


def test_a_round_through_a_bottleneck_broker_grows_linearly_with_clients() -> None:
    payload, beta = 1_000_000, 100e6
    times = {m: simulated_round(m, payload, beta) for m in (4, 8, 16, 32)}
    per_client = 2 * 8 * publish_size("model", payload, 1) / beta  # broadcast out + upload out, per client
    for small, large in ((4, 8), (8, 16), (16, 32)):
        assert (times[large] - times[small]) / (large - small) == pytest.approx(per_client, rel=1e-3)
    assert times[32] >= 2 * 32 * 8 * payload / beta  # the reference's lower bound 2 m B / beta
