"""The cost model: one transfer-time formula, charged bit for bit alike by every kind of run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from raysim.network.transport import Link, Transport, mbps_to_bps, transfer_s
from raysim.sim.cost.devices import Population, SystemConfig
from raysim.sim.cost.links import client_links, shared_link
from raysim.sim.bridges.vertical import HeCost, Network, VerticalLedger

PACKAGE = Path(__file__).resolve().parents[2] / "raysim"
HOME = PACKAGE / "network" / "transport.py"


def _is_constant(node: ast.AST, value: float) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value == value


def _formula_copies(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """Where a file writes ``8 * bytes / bandwidth`` or ``mbps * 1e6`` itself."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.BinOp):
            continue
        product = node.left if isinstance(node.left, ast.BinOp) and isinstance(node.left.op, ast.Mult) else None
        eight_bits = isinstance(node.op, ast.Div) and product is not None and (
            _is_constant(product.left, 8) or _is_constant(product.right, 8))
        megabits = isinstance(node.op, ast.Mult) and (_is_constant(node.left, 1e6) or _is_constant(node.right, 1e6))
        if eight_bits or megabits:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_transfer_formula_is_written_once() -> None:
    """Every transfer (the transport, device timing, broker and edge links, the vertical run's
    phases, the privacy protocols' round trips) is charged by ``transfer_s``; a second copy of
    the formula or of the Mbit/s conversion could drift from it."""
    copies = [line for path in sorted(PACKAGE.rglob("*.py")) if path != HOME for line in _formula_copies(path)]
    assert copies == []
    assert len(_formula_copies(HOME)) == 2  # transfer_s and mbps_to_bps themselves


def test_the_check_sees_a_copy(tmp_path: Path) -> None:
    source = tmp_path / "example.py"
    source.write_text("def f(size, mbps, latency):\n    return latency + 8 * size / (mbps * 1e6)\n")
    assert _formula_copies(source, tmp_path) == ["example.py:2: 8 * size / (mbps * 1000000.0)",
                                                 "example.py:2: mbps * 1000000.0"]


def test_transfer_s_is_latency_plus_bits_over_bandwidth() -> None:
    assert transfer_s(1_000_000, 8e6, 0.5) == 1.5
    assert transfer_s(1_000_000, 8e6) == 1.0
    assert transfer_s(0, 8e6, 0.25) == 0.25
    assert mbps_to_bps(8.0) == 8e6


def test_device_timing_is_the_formula_bit_for_bit() -> None:
    config = SystemConfig(downlink_mbps=3.3, uplink_mbps=0.7, latency_s=0.013)
    timing = Population(config, 2, seed=0).timing(1, start=0.0, samples=7, epochs=1, model_bytes=123_457,
                                                  update_bytes=98_765)
    assert timing.download_s == transfer_s(123_457, mbps_to_bps(3.3), 0.013)
    assert timing.upload_s == transfer_s(98_765, mbps_to_bps(0.7), 0.013)


def test_a_message_on_the_transport_is_the_formula_plus_the_far_latency() -> None:
    client = Link(0.013, mbps_to_bps(0.7), mbps_to_bps(3.3))
    message = Transport({1: client}).send(1, 0, 98_765, at=2.5)
    assert message.arrival == 2.5 + transfer_s(98_765, client.uplink_bps) + 0.013 + 0.0


def test_a_vertical_phase_lasts_its_slowest_transfer() -> None:
    ledger = VerticalLedger(Network(bandwidth_mbps=3.3, latency_s=0.013), HeCost())
    ledger.phase([("a", "b", 1_000), ("b", "a", 54_321)])
    assert ledger.now == transfer_s(54_321, mbps_to_bps(3.3), 0.013)


def test_links_come_from_the_device_profiles_and_the_configured_nics() -> None:
    population = Population(SystemConfig(downlink_mbps=50.0, uplink_mbps=10.0, latency_s=0.05), 3, seed=0)
    assert client_links(population, [2]) == {2: Link(0.05, 10e6, 50e6)}
    assert shared_link(8.0) == Link(0.0, 8e6, 8e6)
    assert shared_link(8.0, 0.01) == Link(0.01, 8e6, 8e6)


@pytest.mark.parametrize("mbps", [1e-6, 0.7, 3.3, 1e6])
def test_mbps_to_bps_is_the_old_conversion(mbps: float) -> None:
    assert mbps_to_bps(mbps) == mbps * 1e6
