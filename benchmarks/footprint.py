"""Where a run's memory and time go, per process kind, against the ideal loop (issue "Footprint").

    python benchmarks/footprint.py                       # W1, W2, W3 and the sweep, 3 repeats
    python benchmarks/footprint.py --only W2 --repeat 5

For each workload (../shared/reference/workloads.md) and repeat, alternating:

- ``raysim run`` as a subprocess, timed alone: the whole process's wall time, its start-up (from
  its summary) and how long it lived after the last round's results were written (the last
  change to rounds.parquet);
- the same run again, its process tree's proportional set size (PSS) sampled every 0.1 s and
  grouped by kind: the ``raysim`` process itself, the driver actor, client actors, the process
  that prepares the data, Ray's idle workers and Ray's own daemons. Sampling costs CPU, so no
  time is taken from this run;
- the ideal loop (``ideal.py``, one parent and one forked child per core) likewise: timed
  alone, then sampled.

Prints medians and the issue's ratios and writes JSON (benchmarks/footprint.json). The sweep
part runs 10 short trials with ``raysim sweep`` and the same 10 runs as separate ``raysim run``
commands, and counts the Ray starts (``gcs_server`` processes) of each. PSS splits shared pages
between the processes mapping them: measure on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil
import tomli_w

from environment import environment  # what the figures ran with (benchmarks/environment.py)

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {  # as benchmarks/run.py: ../shared/reference/workloads.md
    "W1": {"clients": 100, "per_round": 10, "model": "cnn", "batch": 32, "rounds": 5},
    "W2": {"clients": 1000, "per_round": 100, "model": "logreg", "batch": 10, "rounds": 5},
    "W3": {"clients": 10000, "per_round": 1000, "model": "logreg", "batch": 6, "rounds": 3},
}
TARGETS = {"W1": {"peak_mb": 2000, "whole_ratio": 1.15}, "W2": {"peak_mb": 1600, "whole_ratio": 2.0}}
SWEEP_TRIALS = 10


def scenario_table(name: str) -> dict:
    w = WORKLOADS[name]
    return {
        "run": {"name": name.lower(), "seed": 0, "rounds": w["rounds"], "eval_every": w["rounds"], "checkpoint_every": 0},
        "data": {"dataset": "fashion_mnist", "num_clients": w["clients"], "partition": {"kind": "iid"}},
        "model": {"name": w["model"]},
        "client": {"epochs": 1, "batch_size": w["batch"], "lr": 0.05},
        "selection": {"clients_per_round": w["per_round"]},
        "resources": {"num_cpus": 1},
    }


def scenario_file(name: str, folder: Path) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(tomli_w.dumps(scenario_table(name)))
    return path


def command(part: str, name: str, folder: Path) -> list[str]:
    """``raysim run`` on workload ``name`` (results under ``folder``), or the ideal loop on it."""
    if part == "raysim":
        return [sys.executable, "-m", "raysim", "run", str(scenario_file(name, folder)), "--results",
                str(folder / "results"), "--quiet"]
    w = WORKLOADS[name]
    return [sys.executable, str(ROOT / "benchmarks" / "ideal.py"), "--clients", str(w["clients"]), "--per-round",
            str(w["per_round"]), "--model", w["model"], "--batch", str(w["batch"]), "--rounds", str(w["rounds"])]


def kind_of(process: psutil.Process, root: int) -> str:
    if process.pid == root:
        return "main process"
    try:
        line = " ".join(process.cmdline())
    except psutil.Error:
        return "gone"
    for marker, kind in (("ray::Driver", "driver actor"), ("ray::GossipRounds", "driver actor"),
                         ("ray::HierRounds", "driver actor"), ("ray::ClientActo", "client actors"),
                         ("ray::DashboardAgent", "dashboard agent"), ("ray::RuntimeEnvAgent", "runtime env agent"),
                         ("ray::IDLE", "idle Ray workers"),
                         ("gcs_server", "gcs_server"), ("raylet", "raylet"),
                         ("dashboard/agent.py", "dashboard agent"), ("runtime_env/agent", "runtime env agent"),
                         ("dashboard/dashboard.py", "API server (dashboard.py)"), ("log_monitor", "log monitor"),
                         ("monitor.py", "autoscaler monitor")):
        if marker in line:
            return kind
    if "ideal.py" in line:
        return "ideal loop's forked worker"
    script = next((Path(a).name for a in process.cmdline()[1:] if a.endswith(".py")), process.name())
    return f"other: {script}"


def timed(command: list[str], results: Path | None) -> dict:
    """Runs ``command`` alone; its wall time and, for raysim, what its results say."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ended, wall = time.time(), time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{command[1:3]} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    if results is None:
        return {"wall_s": wall}
    (run_dir,) = results.glob("*/*")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"wall_s": wall, "startup_s": summary["startup_s"], "final_accuracy": summary["final_accuracy"],
            "after_last_round_s": ended - (run_dir / "rounds.parquet").stat().st_mtime}


def sampled(command: list[str]) -> dict:
    """Runs ``command`` and samples its process tree's PSS: the peak of the sum, what each kind
    held at that moment, and each kind's own peak (the kinds do not peak together)."""
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(child.pid)
    peaks: dict[str, float] = defaultdict(float)
    peak_total, at_peak, servers = 0.0, {}, set()
    while child.poll() is None:
        now: dict[str, float] = defaultdict(float)
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for process in tree:
            try:
                kind = kind_of(process, root.pid)
                now[kind] += process.memory_full_info().pss / 2**20
                if kind == "gcs_server":
                    servers.add(process.pid)
            except psutil.Error:
                continue
        for kind, mb in now.items():
            peaks[kind] = max(peaks[kind], mb)
        total = sum(now.values())
        if total > peak_total:
            peak_total, at_peak = total, dict(now)
        time.sleep(0.1)
    if child.returncode:
        raise RuntimeError(f"{command[1:3]} exited {child.returncode}: {child.stderr.read().decode()[-2000:]}")
    peaks.pop("gone", None)
    at_peak.pop("gone", None)
    return {"peak_total_mb": peak_total, "at_peak_mb": dict(sorted(at_peak.items())),
            "peaks_mb": dict(sorted(peaks.items())), "ray_starts": len(servers)}


def measure_workload(name: str, repeat: int, *, ideal: bool = True) -> dict:
    rows = []
    for _ in range(repeat):
        row = {}
        for part in ("raysim", "ideal") if ideal and name in TARGETS else ("raysim",):  # W3: against its earlier figure
            with tempfile.TemporaryDirectory() as folder:
                row[part] = timed(command(part, name, Path(folder)), Path(folder) / "results" if part == "raysim" else None)
            with tempfile.TemporaryDirectory() as folder:
                row[part].update(sampled(command(part, name, Path(folder))))
        rows.append(row)
    return {"workload": name, "repeats": rows, "median": _medians(rows)}


def _medians(rows: list[dict]) -> dict:
    out: dict = {}
    for part in rows[0]:
        keys = [k for k, v in rows[0][part].items() if isinstance(v, (int, float))]
        out[part] = {k: statistics.median(r[part][k] for r in rows) for k in keys}
        for table in ("at_peak_mb", "peaks_mb"):
            kinds = {k for r in rows for k in r[part][table]}
            out[part][table] = {k: statistics.median(r[part][table].get(k, 0.0) for r in rows) for k in sorted(kinds)}
    if "ideal" in out:
        out["whole_ratio"] = statistics.median(r["raysim"]["wall_s"] / r["ideal"]["wall_s"] for r in rows)
        out["memory_ratio"] = statistics.median(r["raysim"]["peak_total_mb"] / r["ideal"]["peak_total_mb"]
                                                for r in rows)
    return out


def measure_sweep() -> dict:
    """10 short trials as one ``raysim sweep``, then as 10 ``raysim run`` commands."""
    table = {
        "run": {"name": "s10", "seed": 0, "rounds": 3, "eval_every": 3, "checkpoint_every": 0},
        "data": {"dataset": "synthetic", "num_clients": 30, "partition": "natural"},
        "model": {"name": "logreg"},
        "client": {"epochs": 1, "batch_size": 10, "lr": 0.01},
        "selection": {"clients_per_round": 10},
        "resources": {"num_cpus": 1},
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s10.toml"
        path.write_text(tomli_w.dumps({**table, "sweep": {"seeds": list(range(SWEEP_TRIALS)), "actors_per_trial": 1}}))
        started = time.perf_counter()
        sweep = sampled([sys.executable, "-m", "raysim", "sweep", str(path), "--out", str(Path(folder) / "out")])
        sweep["wall_s"] = time.perf_counter() - started
        alone_path = Path(folder) / "alone.toml"
        lone = {"wall_s": 0.0, "ray_starts": 0}
        for seed in range(SWEEP_TRIALS):
            alone_path.write_text(tomli_w.dumps({**table, "run": {**table["run"], "seed": seed}}))
            started = time.perf_counter()
            one = sampled([sys.executable, "-m", "raysim", "run", str(alone_path), "--quiet", "--results",
                           str(Path(folder) / "alone")])
            lone["wall_s"] += time.perf_counter() - started
            lone["ray_starts"] += one["ray_starts"]
    return {"trials": SWEEP_TRIALS, "sweep_wall_s": sweep["wall_s"], "sweep_ray_starts": sweep["ray_starts"],
            "separate_runs_wall_s": lone["wall_s"], "separate_runs_ray_starts": lone["ray_starts"]}


def report(results: list[dict], sweep: dict | None) -> None:
    for result in results:
        name, m = result["workload"], result["median"]
        r = m["raysim"]
        print(f"\n{name}: medians of {len(result['repeats'])}")
        print("| | raysim | ideal loop |\n|---|---:|---:|")
        i = m.get("ideal", {})
        for key, label in (("peak_total_mb", "peak memory, all processes (MB)"), ("wall_s", "whole process (s)"),
                           ("startup_s", "start-up (s)"), ("after_last_round_s", "after the last round (s)")):
            ideal = f"{i[key]:.2f}" if key in i else "-"
            print(f"| {label} | {r[key]:.2f} | {ideal} |")
        if "whole_ratio" in m and name in TARGETS:
            target = TARGETS[name]
            print(f"whole-process ratio {m['whole_ratio']:.2f} (target <= {target['whole_ratio']}), "
                  f"peak {r['peak_total_mb']:.0f} MB (target <= {target['peak_mb']})")
        print("| process kind | PSS at the total's peak (MB) | its own peak (MB) |\n|---|---:|---:|")
        for kind, mb in r["peaks_mb"].items():
            print(f"| {kind} | {r['at_peak_mb'].get(kind, 0.0):.0f} | {mb:.0f} |")
    if sweep:
        print(f"\nsweep of {sweep['trials']} short runs: {sweep['sweep_wall_s']:.1f} s, Ray started "
              f"{sweep['sweep_ray_starts']} time(s); as separate runs: {sweep['separate_runs_wall_s']:.1f} s, "
              f"Ray started {sweep['separate_runs_ray_starts']} times")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="W1,W2,W3,sweep", help="comma-separated: W1, W2, W3, sweep")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "footprint.json")
    parser.add_argument("--no-ideal", action="store_true", help="raysim alone (e.g. an older commit's, for comparison)")
    args = parser.parse_args()
    parts = args.only.split(",")
    results = [measure_workload(name, args.repeat, ideal=not args.no_ideal) for name in parts if name in WORKLOADS]
    sweep = measure_sweep() if "sweep" in parts else None
    report(results, sweep)
    machine = f"{platform.node()} {psutil.cpu_count()} cores {psutil.virtual_memory().total / 2**30:.0f} GB"
    args.out.write_text(json.dumps({"machine": machine, "environment": environment(), "command": " ".join(sys.argv),
                                    "workloads": results, "sweep": sweep}, indent=1))


if __name__ == "__main__":
    main()
