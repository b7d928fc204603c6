"""The processes of a local Ray that raysim started, so none outlives the run that started it.

A clean stop (``ray.shutdown``) ends most of Ray's processes, but some of its agents can
survive it, and a hard kill of ``raysim run`` (SIGKILL, out of memory) leaves them all behind.
So every local Ray that raysim starts is listed in a small registry file (pid and start time of
each process: a pid reused by an unrelated process is never touched):

- :func:`record` after start-up and again once the actors are up;
- :func:`release` after ``ray.shutdown``: kills what is still alive and deletes the entry;
- :func:`reap` before starting a new local Ray: ends the processes of every entry whose owner
  is gone (a run that was killed), so a new run is never disturbed by an old one's leftovers.

The registry lives in ``$RAYSIM_STATE_DIR`` (default ``~/.cache/raysim/local-ray``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil

from raysim.files import atomic_write


def registry_dir() -> Path:
    return Path(os.environ.get("RAYSIM_STATE_DIR") or Path.home() / ".cache" / "raysim") / "local-ray"


def _entry(owner: psutil.Process) -> Path:
    return registry_dir() / f"{owner.pid}-{int(owner.create_time())}.json"


def record() -> None:
    """Lists this process's descendants (Ray's processes) under this process's entry."""
    owner = psutil.Process()
    processes = [[p.pid, p.create_time()] for p in owner.children(recursive=True)]
    path = _entry(owner)
    path.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(path.read_text())["processes"] if path.exists() else []
    merged = {pid: created for pid, created in known + processes}
    atomic_write(path, json.dumps({"owner": [owner.pid, owner.create_time()], "processes": sorted(merged.items())}))


def release() -> None:
    """After a shutdown: kills what this process's entry lists and is still alive, drops the entry."""
    path = _entry(psutil.Process())
    if path.exists():
        _kill(json.loads(path.read_text())["processes"])
        path.unlink(missing_ok=True)


def reap() -> int:
    """Kills the listed processes of every entry whose owner has died; returns how many."""
    killed = 0
    for path in sorted(registry_dir().glob("*.json")) if registry_dir().is_dir() else []:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if _alive(*entry["owner"]):
            continue
        killed += _kill(entry["processes"])
        path.unlink(missing_ok=True)
    return killed


def _alive(pid: int, created: float) -> psutil.Process | None:
    """The process if it is still the one recorded (same pid and start time), else None."""
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - created) < 1e-3 and process.status() != psutil.STATUS_ZOMBIE:
            return process
    except psutil.Error:
        pass
    return None


def _kill(processes: list[list[float]]) -> int:
    alive = [p for p in (_alive(int(pid), created) for pid, created in processes) if p is not None]
    end(alive)
    return len(alive)


def end(processes: list[psutil.Process]) -> None:
    """Kills the processes (SIGKILL: none can ignore it) and waits until they are dead."""
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            pass
    _wait_dead(processes, timeout=5.0)


def _wait_dead(processes: list[psutil.Process], *, timeout: float) -> None:
    """Until each process is gone or a zombie: dead, its memory released, only its exit status
    left for its parent to collect. Ray's processes whose parent died are the init process's to
    collect, which it did up to 1.5 s later: waiting for that held every run's exit. This
    process's own children are collected here."""
    deadline = time.monotonic() + timeout
    while processes and time.monotonic() < deadline:
        _, processes = psutil.wait_procs(processes, timeout=0.05)
        processes = [p for p in processes if not _dead(p)]


def _dead(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True
