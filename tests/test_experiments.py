"""``raysim sweep``: bad specs refused up front; trials on Ray Tune; an interrupted sweep resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from raysim.cli import main
from raysim.experiments.sweep import load_sweep
from raysim.results import load
from raysim.results.summary import summarize
from raysim.runtime.resources import ResourcesConfig
from raysim.runtime.session import ResourceError, _plan_in_group
from tests.conftest import tiny_table

ROOT = Path(__file__).resolve().parents[1]


def _scenario(tmp_path: Path, sweep: dict, **sections: dict) -> Path:
    table = tiny_table(run={"executor": "ray", "rounds": 3, "name": "sw"}, **sections)
    table["sweep"] = sweep
    path = tmp_path / "sweep.toml"
    path.write_text(tomli_w.dumps(table))
    return path


@pytest.mark.parametrize("sweep, message", [
    ({"client.lrr": [0.1]}, "[sweep] 'client.lrr' = 0.1: unknown key 'client.lrr'"),
    ({"client.lr": []}, "[sweep] 'client.lr' = [] must be a non-empty list"),
    ({"client.lr": ["fast"]}, "[sweep] 'client.lr' = 'fast': client.lr must be a number"),
    ({"client.lr": [0.1, -1.0]}, "[sweep] 'client.lr' = -1.0: client: lr must be > 0"),
    ({"speed": [1]}, "[sweep] key 'speed' is unknown"),
    ({"seeds": [0, -1]}, "[sweep] 'seeds' = [0, -1] must be non-negative integers"),
    ({"resources.num_cpus": [1.0, 2.0]}, "[sweep] 'resources.num_cpus' cannot vary within a sweep"),
])
def test_bad_sweep_specs_are_refused_before_anything_starts(tmp_path, capsys, sweep, message):
    code = main(["sweep", str(_scenario(tmp_path, sweep)), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in " ".join(err.split()) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_the_command_line_grid_replaces_the_files_and_expands_with_the_seeds(tmp_path):
    path = _scenario(tmp_path, {"client.lr": [0.1], "seeds": [0, 1]})
    sweep = load_sweep(path, grid=("client.lr=[0.01, 0.05]", "server.strategy=['fedavg', 'fednova']"))
    assert len(sweep.trials) == 2 * 2 * 2
    assert sweep.trials["sw-t0"] == {"client.lr": 0.01, "server.strategy": "fedavg", "run.seed": 0}
    assert sweep.scenarios["sw-t7"].client.lr == 0.05 and sweep.scenarios["sw-t7"].run.seed == 1
    assert {s.run.name for s in sweep.scenarios.values()} == set(sweep.trials)


def test_a_trial_plans_its_actors_into_its_own_bundles_or_is_refused():
    auto = _plan_in_group(ResourcesConfig(num_cpus=1.0), 8, [{"CPU": 1.0}, {"CPU": 1.0}])
    assert auto.num_actors == 2 and auto.bundles == (0, 1)
    with pytest.raises(ResourceError, match="needs 8 client actors .* holds 2 such bundles"):
        _plan_in_group(ResourcesConfig(num_cpus=1.0, clients_per_actor=1), 8, [{"CPU": 1.0}, {"CPU": 1.0}])


@pytest.mark.ray
def test_a_trial_larger_than_the_cluster_is_refused_naming_the_shortfall(tmp_path, capsys):
    path = _scenario(tmp_path, {"client.lr": [0.1], "actors_per_trial": 3}, ray={"num_cpus": 2})
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "one trial reserves 3 actor(s) x 1 CPU = 3 of 2 CPU: it can never start" in capsys.readouterr().err
    assert not (tmp_path / "out" / "trials").exists()


def _sweep(path: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAYSIM_STATE_DIR": str(out.parent / "state")}
    return subprocess.Popen([sys.executable, "-m", "raysim", "sweep", str(path), "--out", str(out)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _completed(out: Path) -> dict[str, str]:
    found = {}
    for summary in out.glob("trials/*/*/summary.json"):
        if json.loads(summary.read_text())["status"] == "completed":
            found[summary.parent.parent.name] = summary.read_text()
    return found


@pytest.mark.ray
@pytest.mark.slow
def test_a_killed_sweep_resumes_running_only_its_unfinished_trials(tmp_path):
    path = _scenario(tmp_path, {"client.lr": [0.02, 0.05], "seeds": [0, 1]}, ray={"num_cpus": 2})
    out = tmp_path / "out"
    first = _sweep(path, out)
    deadline = time.monotonic() + 240
    while not _completed(out) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)  # the sweep and its Ray, mid-sweep
    first.wait()
    before = _completed(out)
    assert 1 <= len(before) < 4, before
    second = _sweep(path, out)
    log, _ = second.communicate(timeout=300)
    assert second.returncode == 0, log
    assert f"4 trials, {len(before)} finished earlier (skipped), {4 - len(before)} to run" in log
    assert "2 run at once; Ray started once for the sweep" in log
    assert "Failed to fetch metrics" not in log  # Tune's result files are off on purpose: no warning about them
    after = _completed(out)
    assert set(after) == {f"sw-t{i}" for i in range(4)}
    assert all(after[name] == text for name, text in before.items())  # finished trials were not run again
    assert sum(f"{name} (" in log for name in before) == 0
    frame = load(out).summary
    assert len(frame) == 4 and {"client.lr", "run.seed", "trial"} <= set(frame.columns)
    arms = summarize(frame, by=["client.lr"]).arms
    assert arms["n"].tolist() == [2, 2]
