"""Message timing on the transport: star timing as today, FIFO queues at shared nodes, counters."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysim.network.transport import Link, SerialQueue, Transport

CLIENT = Link(latency_s=0.05, uplink_bps=10e6, downlink_bps=50e6)


def test_star_timing_is_todays_formula() -> None:
    """Server at zero latency and infinite bandwidth: latency + 8 B / client link, as sim/cost/devices.py."""
    transport = Transport({1: CLIENT})
    up = transport.send(1, 0, 1_000_000, at=2.0)
    down = transport.send(0, 1, 1_000_000, at=2.0)
    assert up.arrival == pytest.approx(2.0 + 0.05 + 8e6 / 10e6)
    assert down.arrival == pytest.approx(2.0 + 0.05 + 8e6 / 50e6)


def test_the_slower_end_paces_a_message_and_both_latencies_count() -> None:
    transport = Transport({1: Link(0.01, 100e6, 100e6), 2: Link(0.02, 100e6, 1e6)})
    message = transport.send(1, 2, 125_000, at=0.0)  # 1 Mbit
    assert message.arrival == pytest.approx(0.03 + 1.0)


def test_a_shared_node_serialises_uploads_linearly_in_the_number_of_senders() -> None:
    server = Link(0.0, 8e6, 8e6)  # 1 MB/s each way
    fast = Link(0.0, 1e12, 1e12)
    for m in (1, 5, 20):
        transport = Transport({0: server}, default=fast, shared=(0,))
        last = max(transport.send(c, 0, 1_000_000, at=0.0).arrival for c in range(1, m + 1))
        assert last == pytest.approx(m * 1.0)


def test_ingress_and_egress_are_separate_queues() -> None:
    transport = Transport({0: Link(0.0, 8e6, 8e6)}, default=Link(), shared=(0,))
    assert transport.send(1, 0, 1_000_000, at=0.0).arrival == pytest.approx(1.0)
    assert transport.send(0, 1, 1_000_000, at=0.0).arrival == pytest.approx(1.0)


def test_a_message_learnt_late_uses_the_idle_time_without_moving_earlier_bookings() -> None:
    queue = SerialQueue()
    assert queue.book(10.0, 1.0) == 11.0
    assert queue.book(0.0, 2.0) == 2.0  # fits before the booking at 10
    assert queue.book(1.0, 9.0) == 12.0  # 8 s idle in [2, 10], the last second after 11
    assert queue.starts == [0.0] and queue.ends == [12.0]
    assert queue.book(20.0, 1.0) == 21.0
    assert queue.book(12.0, 0.0) == 12.0  # nothing to send takes no time
    assert queue.book(11.5, 9.0) == 22.0  # [12, 20] and [21, 22]
    assert queue.starts == [0.0] and queue.ends == [22.0]


def test_in_order_bookings_are_fifo() -> None:
    queue = SerialQueue()
    assert [queue.book(t, 1.0) for t in (0.0, 0.0, 0.5, 5.0, 5.5)] == [1.0, 2.0, 3.0, 6.0, 7.0]
    assert queue.starts == [0.0, 5.0] and queue.ends == [3.0, 7.0]


def test_counters_and_the_message_table() -> None:
    transport = Transport(log=True)
    transport.send(1, 0, 100, at=0.0, kind="model")
    transport.send(2, 0, 50, at=1.0, kind="model")
    transport.send(0, 1, 7, at=2.0, kind="ack")
    rows = {r["node"]: r for r in transport.node_rows()}
    assert rows[0] == {"node": 0, "messages_out": 1, "messages_in": 2, "bytes_out": 7, "bytes_in": 150}
    assert rows[1]["bytes_out"] == 100 and rows[1]["bytes_in"] == 7
    assert transport.kinds == {"model": 2, "ack": 1}
    table = transport.rows()
    assert [(r["source"], r["destination"], r["bytes"], r["kind"]) for r in table] == [
        (1, 0, 100, "model"), (2, 0, 50, "model"), (0, 1, 7, "ack")]
    assert all(r["arrival"] == r["send"] for r in table)  # the default link is instantaneous


def test_no_table_unless_asked() -> None:
    with pytest.raises(ValueError, match="log=False"):
        Transport().rows()


@pytest.mark.parametrize("kwargs", [{"latency_s": -1.0}, {"uplink_bps": 0.0}, {"downlink_bps": math.nan}])
def test_links_refuse_impossible_values(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Link(**kwargs)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10)), min_size=1, max_size=30))
def test_the_queue_is_work_conserving(bookings: list[tuple[int, int]]) -> None:
    """Busy time equals the work booked, intervals stay sorted and apart, and no booking ends
    before its own duration has passed."""
    queue = SerialQueue()
    for at, seconds in bookings:
        assert queue.book(float(at), float(seconds)) >= at + seconds
    assert sum(e - s for s, e in zip(queue.starts, queue.ends)) == sum(s for _, s in bookings)
    assert all(e < s for e, s in zip(queue.ends, queue.starts[1:]))
