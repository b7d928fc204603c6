"""The simulated clock: events in order, and moved forward only by run kinds that keep no events."""

from __future__ import annotations

import math

import pytest

from raysim.sim.kernel.clock import SimClock
from raysim.sim.bridges.vertical import HeCost, Network, VerticalLedger


def test_advance_to_moves_forward_or_stays() -> None:
    clock = SimClock()
    clock.advance_to(2.5)
    clock.advance_to(2.5)
    assert clock.now == 2.5


@pytest.mark.parametrize("at", [2.4, -1.0, math.nan])
def test_advance_to_never_goes_back(at: float) -> None:
    clock = SimClock(2.5)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance_to(at)
    assert clock.now == 2.5


def test_advance_to_never_passes_a_scheduled_event() -> None:
    clock = SimClock()
    clock.schedule(3.0, "due")
    clock.advance_to(3.0)
    with pytest.raises(ValueError, match="past the event scheduled at 3.0"):
        clock.advance_to(3.5)
    assert clock.pop() == (3.0, "due")
    clock.advance_to(3.5)
    assert clock.now == 3.5


def test_the_vertical_run_keeps_its_time_on_the_clock() -> None:
    ledger = VerticalLedger(Network(bandwidth_mbps=8.0, latency_s=0.5), HeCost(encrypt_s=2.0))
    ledger.phase([("a", "b", 1_000_000)])
    ledger.phase([], ops={"a": {"encrypt": 3}})
    assert isinstance(ledger.clock, SimClock)
    assert ledger.clock.now == ledger.now == 1.5 + 6.0
