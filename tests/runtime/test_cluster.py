"""A real two-node Ray cluster on this machine: client actors land on both nodes and the
metrics equal those of a local run. Everything runs in subprocesses, so the test's own Ray
runtime is untouched, and the cluster is stopped afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import tomli_w

from tests.conftest import tiny_table

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# A throwaway test cluster on loopback; real clusters should keep Ray's token authentication.
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_cpus(address: str) -> float:
    probe = f"import ray; ray.init(address='{address}', log_to_driver=False); print(ray.cluster_resources().get('CPU', 0))"
    out = subprocess.run([sys.executable, "-c", probe], env=ENV, capture_output=True, text=True, timeout=120)
    return float(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0.0


@pytest.fixture
def two_node_cluster():
    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes = [subprocess.Popen(["ray", "start", "--head", f"--port={port}", "--num-cpus=1",
                               "--include-dashboard=false", "--block"], env=ENV, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.time() + 120
        while _cluster_cpus(address) < 1 and time.time() < deadline:
            time.sleep(1)
        nodes.append(subprocess.Popen(["ray", "start", f"--address={address}", "--num-cpus=1", "--block"],
                                      env=ENV, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        while _cluster_cpus(address) < 2 and time.time() < deadline:
            time.sleep(1)
        assert _cluster_cpus(address) == 2, "the two-node cluster did not come up"
        yield address
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(timeout=90)
            except subprocess.TimeoutExpired:
                pass
            try:  # whatever of the node outlived its `ray start` (raylet, GCS) goes too
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _run(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "raysim", "run", *args, "--quiet"], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_actors_spread_over_both_nodes_and_metrics_match_a_local_run(two_node_cluster, tmp_path):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(tomli_w.dumps(tiny_table(run={"executor": "ray"}, ray={"num_cpus": 2})))
    _run([str(scenario), "--address", two_node_cluster, "--results", str(tmp_path / "cluster")])
    _run([str(scenario), "--results", str(tmp_path / "local")])
    (cluster_run,) = (tmp_path / "cluster" / "tiny").iterdir()
    (local_run,) = (tmp_path / "local" / "tiny").iterdir()
    summary = pd.read_json(cluster_run / "summary.json", typ="series")
    assert summary["num_nodes"] == 2 and summary["num_actors"] == 2
    columns = ["round", "sim_time", "test_accuracy", "test_loss", "train_loss", "bytes_up"]
    pd.testing.assert_frame_equal(pd.read_parquet(cluster_run / "rounds.parquet")[columns],
                                  pd.read_parquet(local_run / "rounds.parquet")[columns])
