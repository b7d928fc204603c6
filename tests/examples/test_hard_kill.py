"""Each example, as a user runs it, gives the same rounds whatever the actor packing and after a
hard kill: a run with one client per actor, uninterrupted, against a run with every client on
one actor that is killed (SIGKILL to its process group, Ray included) after its second round
and resumed from its checkpoint with ``--resume --trust-code``."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.examples.conftest import EXAMPLES, TINY, run_example

# 4 clients of half a CPU fit 4 actors in 2 CPUs
COMMON = ("run.rounds=4", "resources.num_cpus=0.5")


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "raysim", "run", *args, "--quiet"]


def _env(name: str, state: Path) -> dict:
    paths = [str(EXAMPLES / name), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "RAYSIM_STATE_DIR": str(state)}


def _killed_after(name: str, results: Path, rounds: int, overrides: tuple[str, ...]) -> Path:
    sets = [arg for value in (*TINY, *overrides) for arg in ("--set", value)]
    process = subprocess.Popen(_command(str(EXAMPLES / name / f"fmnist_{name}.toml"), *sets, "--results",
                                        str(results)), cwd=results.parent, env=_env(name, results.parent / "state"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    recorded = 0
    while recorded < rounds and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        tables = list(results.glob("*/*/rounds.parquet"))
        # the bytes in one read: the run replaces the file after every round (results._read_table)
        recorded = (len(pd.read_parquet(io.BytesIO(tables[0].read_bytes())))
                    if tables and (tables[0].parent / "checkpoint.zip").exists() else 0)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert recorded >= rounds, "the run ended or stalled before it could be killed"
    (run_dir,) = results.glob("*/*")
    return run_dir


@pytest.mark.parametrize("name", ["feddyn", "moon", "ditto"])
def test_packings_and_a_hard_kill_give_the_same_rounds(name, tmp_path):
    overrides = COMMON
    whole, whole_clients = run_example(name, tmp_path / "whole", *overrides, "resources.clients_per_actor=1")
    run_dir = _killed_after(name, tmp_path / "killed", 2, (*overrides, "resources.clients_per_actor=4"))
    resumed = subprocess.run(_command("--resume", str(run_dir), "--trust-code"), cwd=tmp_path,
                             env=_env(name, tmp_path / "state"), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rounds, clients = (pd.read_parquet(run_dir / f"{t}.parquet") for t in ("rounds", "clients"))
    assert rounds["round"].tolist() == [1, 2, 3, 4]
    assert rounds["test_accuracy"].tolist() == whole["test_accuracy"].tolist()
    order = ["round", "client_id"]
    pd.testing.assert_series_equal(clients.sort_values(order).train_loss.reset_index(drop=True),
                                   whole_clients.sort_values(order).train_loss.reset_index(drop=True))
