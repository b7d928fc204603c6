"""Extreme values are refused at load, with the limit named: one line, exit 2, nothing allocated.

Each family comes from values that used to pass ``validate`` and then exhaust the machine or
fail mid-run with a traceback: a small gzip that expands far beyond what its IDX header
promises (and an oversized CIFAR-10 file), a billion proof-of-work miners, links of 1e-300
Mbit/s, devices slow beyond measure, a sweep of a million trials, a bad model in a sweep's
second trial, an Erdos-Renyi graph that can never be connected, a gossip population whose dense
mixing matrix cannot fit, and a price no budget pays. Values just inside each range still load.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from raysim.cli import main
from raysim.data.idx import DatasetError, read_idx, write_idx
from tests.conftest import tiny_table

ROOT = Path(__file__).resolve().parents[1]
BOMB_MB = 100


def _cli(argv: list[str]) -> tuple[int, str]:
    """main's exit code and stderr (whitespace runs as one space), for commands that must answer
    before any run starts; a refusal must be one line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    assert code == 0 or len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
    return code, " ".join(err.getvalue().split())


def _refused(table: dict, tmp_path: Path, *phrases: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(table))
    code, err = _cli(["validate", str(path)])
    assert code == 2 and err.startswith("error:") and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in err, err


def _bomb(path: Path, *, labels: int = 10) -> Path:
    """An IDX label file whose header promises ``labels`` bytes of payload, gzipped with BOMB_MB
    megabytes of zeros after them: about 100 KB on disk."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    chunks = [packer.compress(struct.pack(">BBBBI", 0, 0, 0x08, 1, labels) + bytes(labels))]
    chunks += [packer.compress(bytes(2**20)) for _ in range(BOMB_MB)]
    path.write_bytes(b"".join(chunks) + packer.flush())
    return path


def test_a_gzip_bomb_is_refused_after_the_bytes_its_header_promises(tmp_path):
    bomb = _bomb(tmp_path / "train-labels-idx1-ubyte.gz")
    assert bomb.stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte.gz: .*header promises 18 bytes"):
            read_idx(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MB while refusing a {BOMB_MB} MB bomb"


def test_a_header_promising_too_much_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2**31, 28, 28)))
    with pytest.raises(DatasetError, match=r"huge-idx3-ubyte.gz: the IDX header promises dimensions "
                                           r"\(2147483648, 28, 28\), .* beyond the limit of 1073741824 bytes"):
        read_idx(path)


def test_a_data_root_holding_a_gzip_bomb_is_bad_input(tmp_path):
    images = np.zeros((10, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(10, dtype=np.uint8))
    _bomb(tmp_path / "train-labels-idx1-ubyte.gz")
    table = tiny_table(data={"dataset": "fashion_mnist", "partition": "iid", "root": str(tmp_path)})
    _refused(table, tmp_path, "train-labels-idx1-ubyte.gz", "the header promises 18 bytes", "content has more")


def test_an_oversized_cifar10_file_is_refused_by_its_size(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with (folder / "data_batch_1").open("wb") as sparse:  # 100 MB that take no disk space
        sparse.truncate(BOMB_MB * 2**20)
    table = tiny_table(data={"dataset": "cifar10", "partition": "iid", "root": str(tmp_path)})
    _refused(table, tmp_path, "data_batch_1: 104857600 bytes, beyond the 67108864 bytes (64 MiB)")


LEDGER = {"topology": "ledger", "consensus": "pow"}


@pytest.mark.parametrize("miners", [10**9, 1001])
def test_a_billion_miners_are_refused_at_load(tmp_path, miners):
    started = time.monotonic()
    _refused(tiny_table(network={**LEDGER, "miners": miners}), tmp_path,
             f"network: miners must be a whole number >= 1 and <= 1000, got {miners}")
    assert time.monotonic() - started < 10


def test_a_block_interval_beyond_a_day_is_refused(tmp_path):
    _refused(tiny_table(network={**LEDGER, "block_interval_s": 1e12}), tmp_path,
             "network: block_interval_s must be > 0 (and at most 86400), got 1000000000000.0")


def test_the_most_miners_allowed_still_load(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(tiny_table(network={**LEDGER, "miners": 1000})))
    assert _cli(["validate", str(path)])[0] == 0


def _every_node(**sections: dict) -> dict:
    """The tiny scenario with every client selected, as gossip and hierarchical runs need."""
    table = tiny_table(selection={"fraction": 1.0}, **sections)
    del table["selection"]["clients_per_round"]
    return table


LINKS = [("system", "downlink_mbps", {}), ("system", "uplink_mbps", {}),
         ("network", "broker_mbps", {"topology": "broker"}),
         ("network", "edge_mbps", {"topology": "hierarchical", "num_edges": 2})]


@pytest.mark.parametrize("value, message", [
    (1e-300, "must be > 0 and within [1e-06, 1e+06] Mbit/s (1 bit/s to 1 Tbit/s), got 1e-300"),
    (1e-7, "must be > 0 and within [1e-06, 1e+06] Mbit/s (1 bit/s to 1 Tbit/s), got 1e-07"),
    (1e7, "must be > 0 and within [1e-06, 1e+06] Mbit/s (1 bit/s to 1 Tbit/s), got 10000000.0"),
    (1e300, "= 1e+300 must be a finite number of magnitude <= 1e+12")])
@pytest.mark.parametrize("section, key, extra", LINKS)
def test_link_speeds_outside_1_bit_to_1_terabit_per_second_are_refused(tmp_path, section, key, extra, value, message):
    _refused(_every_node(**{section: {**extra, key: value}}), tmp_path, key, message)


@pytest.mark.parametrize("section, key, extra", LINKS)
def test_link_speeds_inside_the_range_load(tmp_path, section, key, extra):
    for value in (1e-6, 1e6):
        path = tmp_path / "s.toml"
        path.write_text(tomli_w.dumps(_every_node(**{section: {**extra, key: value}})))
        code, err = _cli(["validate", str(path)])
        assert code == 0, err


@pytest.mark.parametrize("value", ["1e-300", "1e300"])
@pytest.mark.parametrize("column", ["downlink_mbps", "uplink_mbps"])
def test_trace_link_speeds_are_held_to_the_same_range(tmp_path, column, value):
    rows = [f"{c},0.001,{value if column == 'downlink_mbps' else 10},{value if column == 'uplink_mbps' else 10},0.05"
            for c in range(8)]
    trace = tmp_path / "devices.csv"
    trace.write_text("client_id,seconds_per_sample,downlink_mbps,uplink_mbps,latency_s\n" + "\n".join(rows) + "\n")
    _refused(tiny_table(system={"trace": str(trace)}), tmp_path, "line 2", f"column {column}")


@pytest.mark.parametrize("section, key, extra", [("system", "latency_s", {}),
                                                 ("network", "broker_latency_s", {"topology": "broker"}),
                                                 ("network", "propagation_s", LEDGER)])
def test_latencies_beyond_an_hour_are_refused(tmp_path, section, key, extra):
    _refused(tiny_table(**{section: {**extra, key: 1e9}}), tmp_path, f"{key} must be >= 0 and at most 3600 seconds")


@pytest.mark.parametrize("key, value, message", [
    ("speed_sigma", 1e12, "speed_sigma must be >= 0 and <= 3, got 1e+12"),  # exp overflowed: a traceback mid-run
    ("seconds_per_sample", 1e12, "seconds_per_sample must be > 0 and <= 60, got 1e+12"),
    ("slow_factor", 1e12, "slow_factor must be >= 1 and <= 1000, got 1e+12"),  # 2e26 simulated seconds
    ("mean_offline_s", 1e12, "mean_offline_s must be >= 1 and <= 1e+06, got 1e+12"),
    ("mean_online_s", 1e-300, "mean_online_s must be >= 1 and <= 1e+06, got 1e-300")])
def test_device_speeds_and_periods_beyond_their_ranges_are_refused(tmp_path, key, value, message):
    system = {"speed_distribution": "lognormal", "slow_fraction": 0.5, "availability": "intermittent", key: value}
    _refused(tiny_table(system=system), tmp_path, f"system: {message}")


def _sweep_file(tmp_path: Path, sweep: dict) -> Path:
    table = tiny_table(run={"name": "sw", "rounds": 1})
    table["sweep"] = sweep
    path = tmp_path / "sweep.toml"
    path.write_text(tomli_w.dumps(table))
    return path


def test_a_sweep_of_a_million_trials_is_refused_in_seconds(tmp_path):
    grid = {"client.lr": [0.001 * (i + 1) for i in range(100)], "client.momentum": [0.001 * i for i in range(100)],
            "server.lr": [0.01 * (i + 1) for i in range(100)]}
    path = _sweep_file(tmp_path, grid)
    started = time.monotonic()
    for command in ("validate", "sweep"):
        done = subprocess.run([sys.executable, "-m", "raysim", command, str(path), "--out", str(tmp_path / "out")]
                              if command == "sweep" else [sys.executable, "-m", "raysim", command, str(path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        err = " ".join(done.stderr.split())
        assert done.returncode == 2 and "Traceback" not in err, err
        assert "100 (client.lr) x 100 (client.momentum) x 100 (server.lr) x 1 (seeds) = 1000000 trials, " \
               "more than the limit of 1000" in err, err
    assert time.monotonic() - started < 30  # two interpreter start-ups; the old code was still building after 90 s
    assert not (tmp_path / "out").exists()


def test_a_bad_model_in_the_second_trial_is_refused_before_tune(tmp_path):
    path = _sweep_file(tmp_path, {"model.name": ["logreg", "no_such_module_xyz:Net"]})
    out = tmp_path / "out"
    for argv in (["validate", str(path)], ["sweep", str(path), "--out", str(out)]):
        code, err = _cli(argv)
        assert code == 2 and "Traceback" not in err, err
        assert err.startswith("error: [sweep] trial sw-t1 (model.name='no_such_module_xyz:Net', run.seed=3): "
                              "model: model.name 'no_such_module_xyz:Net': cannot import module"), err
    assert not out.exists()


GOSSIP = {"topology": "gossip", "graph": "erdos_renyi"}


@pytest.mark.parametrize("p", [1e-12, 0.01])
def test_an_erdos_renyi_graph_that_cannot_connect_is_refused_at_load(tmp_path, p):
    _refused(_every_node(network={**GOSSIP, "edge_probability": p}), tmp_path,
             f"edge_probability = {p:g} leaves G(8, p) connected with chance",
             "1000 seeded draws would find no connected graph")


def test_a_gossip_population_beyond_2048_nodes_is_refused(tmp_path):
    table = _every_node(data={"num_clients": 2049}, network={"topology": "gossip", "graph": "ring"})
    _refused(table, tmp_path, "at most 2048 nodes, got num_clients = 2049")


def test_an_erdos_renyi_graph_that_connects_often_enough_loads(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(_every_node(network={**GOSSIP, "edge_probability": 0.3})))
    assert _cli(["validate", str(path)])[0] == 0


@pytest.mark.parametrize("key", ["price_per_compute_s", "price_per_mb"])
def test_a_price_above_the_budget_is_refused_at_load(tmp_path, key):
    table = tiny_table(contribution={"methods": ["loo"]}, incentive={"scheme": "proportional", key: 1e12})
    _refused(table, tmp_path, f"incentive: {key} must be >= 0 and at most budget = 1", "got 1e+12")


def test_prices_nobody_accepts_end_the_run_with_one_line(tmp_path):
    """A price within the budget that still covers no client's cost stalls round 1: the run
    failed (exit 1), said in one line naming the keys to change, not a traceback."""
    table = tiny_table(run={"executor": "local", "rounds": 2}, contribution={"methods": ["loo"]},
                       system={"seconds_per_sample": 1.0},
                       incentive={"scheme": "proportional", "price_per_compute_s": 1.0, "budget": 1.0})
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(table))
    code, err = _cli(["run", str(path), "--results", str(tmp_path / "results"), "--quiet"])
    assert code == 1 and "Traceback" not in err, err
    assert "incentive.budget" in err and "raise the budget or lower the prices" in err, err
