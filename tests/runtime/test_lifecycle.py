"""A run's life as a user meets it: it always starts, stops on a signal, and leaves nothing behind.

Each test runs ``python -m raysim run`` in a subprocess with its own local Ray, as a newcomer's
first command does, and watches that process tree with psutil.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from raysim.runtime import orphans, session
from raysim.runtime.interrupts import Interrupted

QUICKSTART = "scenarios/quickstart.toml"
pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _start(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "RAYSIM_STATE_DIR": str(tmp_path / "state"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "raysim", "run", QUICKSTART, "--quiet", "--results", str(tmp_path / "results"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        cwd=Path(__file__).resolve().parents[2],
    )


def _wait_for_rounds(tmp_path: Path, process: subprocess.Popen, timeout: float = 120) -> list[psutil.Process]:
    """Waits until a round and its checkpoint are on disk; returns the run's process tree then."""
    deadline = time.monotonic() + timeout
    while not list((tmp_path / "results").glob("quickstart/*/checkpoint.zip")):
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no round finished in time"
        time.sleep(0.2)
    return psutil.Process(process.pid).children(recursive=True)


def _summary(tmp_path: Path) -> dict:
    (path,) = (tmp_path / "results").glob("quickstart/*/summary.json")
    return json.loads(path.read_text())


def _assert_all_gone(processes: list[psutil.Process], timeout: float = 10) -> None:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {[p.cmdline()[:1] for p in alive]}"


def test_the_quickstart_starts_20_times_in_a_row(tmp_path):
    """The start-up hang (a fork during ray.init while a BLAS thread ran) must never come back."""
    for attempt in range(20):
        process = _start(tmp_path, "--set", "run.rounds=1", "--set", "run.eval_every=1")
        try:
            output, _ = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(f"start {attempt + 1} of 20 hung")
        assert process.returncode == 0, output
    assert len(list((tmp_path / "results" / "quickstart").iterdir())) == 20
    summary = json.loads(next((tmp_path / "results").glob("quickstart/*/summary.json")).read_text())
    phases = summary["startup_phases"]  # benchmarks/startup.py reads them
    assert [p["phase"] for p in phases] == ["entered", "ray_started", "data_prepared", "data_in_store",
                                            "model_built", "driver_ready", "run_folder", "first_round"]
    assert all(a["at_s"] <= b["at_s"] and a["process_cpu_s"] <= b["process_cpu_s"] for a, b in zip(phases, phases[1:]))
    assert phases[6]["at_s"] == summary["startup_s"]


def test_ray_starts_without_the_head_processes_a_run_never_uses(tmp_path):
    """The autoscaler monitor, the log monitor and the API server are never started (they cost
    1.6 s of CPU during ``ray.init``, which waited for the API server): no such process, and none
    of their log files in the session, while actors work; Ray's ``Node`` is left as it was."""
    script = """
import json, sys
from pathlib import Path
import psutil, ray
from ray._private.node import Node
from raysim.runtime import session
from raysim.runtime.resources import RayConfig
before = {name: Node.__dict__[name] for name in session.UNUSED_HEAD_STARTERS}
assert session.start(RayConfig(num_cpus=1))
try:
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    echo = ray.remote(num_cpus=0)(session.DriverActor).remote(dict)
    session.build_driver(echo, answer=42)
    assert session.call(echo, "get", "answer") == 42
    lines = [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)]
    print(json.dumps({"restored": all(Node.__dict__[n] is m for n, m in before.items()),
                      "logs": sorted(p.name for p in logs.iterdir()), "processes": lines}))
finally:
    session.stop(True)
"""
    env = {**os.environ, "RAYSIM_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["restored"]
    assert any("raylet" in line for line in facts["processes"])
    assert not [line for line in facts["processes"] if any(s in line for s in session.UNUSED_HEAD_SCRIPTS)]
    assert not [name for name in facts["logs"] if name.startswith(("monitor", "log_monitor", "dashboard."))], \
        facts["logs"]


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_run_promptly_marked_interrupted_with_nothing_left_running(tmp_path, signum, status):
    process = _start(tmp_path, "--set", "run.rounds=100000")
    tree = _wait_for_rounds(tmp_path, process)
    assert tree, "the run started no Ray processes"
    sent = time.monotonic()
    process.send_signal(signum)
    output, _ = process.communicate(timeout=30)
    assert time.monotonic() - sent < 15
    assert process.returncode == status, output
    assert "interrupted" in output
    assert "Traceback" not in output
    summary = _summary(tmp_path)
    assert summary["status"] == "interrupted" and summary["rounds"] >= 1
    _assert_all_gone(tree)
    assert not list((tmp_path / "state" / "local-ray").glob("*.json"))


def test_after_a_hard_kill_the_next_start_ends_the_leftovers(tmp_path):
    process = _start(tmp_path, "--set", "run.rounds=100000")
    tree = _wait_for_rounds(tmp_path, process)
    process.kill()
    process.wait()
    assert list((tmp_path / "state" / "local-ray").glob("*.json")), "the local Ray was not recorded"
    os.environ["RAYSIM_STATE_DIR"] = str(tmp_path / "state")
    try:
        orphans.reap()  # what the next `raysim run` does before starting its own Ray
    finally:
        del os.environ["RAYSIM_STATE_DIR"]
    _assert_all_gone(tree)
    assert not list((tmp_path / "state" / "local-ray").glob("*.json"))


def test_a_killed_driver_actor_fails_the_run_with_one_line_and_the_way_to_resume(tmp_path):
    process = _start(tmp_path, "--set", "run.rounds=100000")
    tree = _wait_for_rounds(tmp_path, process)
    drivers = [p for p in tree if "ray::Driver" in " ".join(p.cmdline())]
    assert drivers, [p.cmdline()[:1] for p in tree]
    drivers[0].kill()
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert "the driver actor died" in output and "raysim run --resume" in output
    assert "Traceback" not in output
    assert _summary(tmp_path)["status"] == "failed"
    _assert_all_gone(tree)


def test_a_cluster_that_does_not_answer_fails_within_seconds(tmp_path):
    process = _start(tmp_path, "--address", "127.0.0.1:1")
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2, output
    assert "127.0.0.1:1" in output and "no Ray cluster answers" in output
    assert not (tmp_path / "results").exists()


def test_raysim_run_itself_never_imports_torch_and_bad_model_input_still_exits_2(tmp_path):
    """The command's process prepares the data without torch and a client actor builds the model
    (the footprint issue): that process stays free of torch, a model the data cannot feed and
    layer names the model lacks still fail with exit 2 and nothing written, and no Ray process
    outlives any of the runs."""
    results = tmp_path / "results"
    code = (
        "import sys\n"
        "from raysim.cli import main\n"
        f"common = [{QUICKSTART!r}, '--quiet', '--results', {str(results)!r}]\n"
        "bad_model = main(['run', *common, '--set', 'model.name=cnn'])\n"
        "bad_layers = main(['run', *common, '--set', 'personal.local_layers=[\"head.\"]',\n"
        "                   '--set', 'personal.holdout=0.2'])\n"
        "good = main(['run', *common, '--set', 'run.rounds=2'])\n"
        "print(bad_model, bad_layers, good, 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "RAYSIM_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.split()[-4:] == ["2", "2", "0", "False"], done.stdout + done.stderr
    assert "model 'cnn' needs image inputs" in done.stderr
    assert "personal.local_layers: local_layers ['head.'] match no state entry" in done.stderr
    (run_dir,) = (results / "quickstart").iterdir()  # the bad runs wrote nothing
    assert json.loads((run_dir / "summary.json").read_text())["rounds"] == 2
    assert not list((tmp_path / "state" / "local-ray").glob("*.json"))  # every Ray process it started is gone


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_run_that_ignores_the_interruption_is_still_ended_by_the_watchdog(signum):
    """If cleanup itself hangs, the process still ends, with 128 + the signal number."""
    code = (
        "import time\n"
        "from raysim.runtime.interrupts import Interrupted, interruptible\n"
        "with interruptible(grace_s=1.0):\n"
        "    try:\n"
        "        print('ready', flush=True); time.sleep(60)\n"
        "    except Interrupted:\n"
        "        time.sleep(60)  # a cleanup that never returns\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    sent = time.monotonic()
    process.send_signal(signum)
    assert process.wait(timeout=20) == 128 + signum
    assert time.monotonic() - sent < 10


def test_interrupted_carries_the_shell_exit_status():
    assert Interrupted(signal.SIGTERM).exit_status == 143
    assert Interrupted(signal.SIGINT).exit_status == 130
    assert isinstance(Interrupted(signal.SIGTERM), KeyboardInterrupt)
