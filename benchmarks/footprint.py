"""Where a run's memory and time go, per process kind (issue "Footprint").

    python benchmarks/footprint.py                     # W1 and W2, as benchmarks/run.py builds them
    python benchmarks/footprint.py --only W2 --repeat 3

Runs ``raysim run`` on a workload as a subprocess and samples, every 0.1 s, the proportional set
size (PSS) of every process in its tree (Ray's processes are its descendants), grouped by kind:
the ``raysim`` process itself, the driver actor, client actors, Ray's idle workers and Ray's own
daemons (gcs_server, raylet, agents). Prints per kind the peak PSS and, for the whole tree, the
peak of the sum; then the whole process's wall time and how long it lived after the last round's
results were written (the last change to rounds.parquet). Writes JSON (benchmarks/footprint.json).
PSS splits shared pages between the processes mapping them, so the same library mapped by an
unrelated process on the machine lowers the figures: measure on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil
import tomli_w

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {  # as benchmarks/run.py: ../shared/reference/workloads.md
    "W1": {"clients": 100, "per_round": 10, "model": "cnn", "batch": 32, "rounds": 5},
    "W2": {"clients": 1000, "per_round": 100, "model": "logreg", "batch": 10, "rounds": 5},
}


def scenario_file(name: str, folder: Path) -> Path:
    w = WORKLOADS[name]
    table = {
        "run": {"name": name.lower(), "seed": 0, "rounds": w["rounds"], "eval_every": w["rounds"], "checkpoint_every": 0},
        "data": {"dataset": "fashion_mnist", "num_clients": w["clients"], "partition": {"kind": "iid"}},
        "model": {"name": w["model"]},
        "client": {"epochs": 1, "batch_size": w["batch"], "lr": 0.05},
        "selection": {"clients_per_round": w["per_round"]},
        "resources": {"num_cpus": 1},
    }
    path = folder / f"{name}.toml"
    path.write_text(tomli_w.dumps(table))
    return path


def kind_of(process: psutil.Process, root: int) -> str:
    if process.pid == root:
        return "raysim (main process)"
    try:
        line = " ".join(process.cmdline())
    except psutil.Error:
        return "gone"
    for marker, kind in (("ray::Driver", "driver actor"), ("ray::ClientActor", "client actors"),
                         ("ray::IDLE", "idle Ray workers"), ("gcs_server", "gcs_server"), ("raylet", "raylet"),
                         ("DashboardAgent", "dashboard agent"), ("RuntimeEnvAgent", "runtime env agent"),
                         ("dashboard/agent.py", "dashboard agent"), ("runtime_env/agent", "runtime env agent"),
                         ("log_monitor", "log monitor"), ("monitor.py", "autoscaler monitor")):
        if marker in line:
            return kind
    script = next((Path(a).name for a in process.cmdline()[1:] if a.endswith(".py")), process.name())
    return f"other: {script}"


def measure(name: str, folder: Path) -> dict:
    results = folder / "results"
    command = [sys.executable, "-m", "raysim", "run", str(scenario_file(name, folder)), "--results", str(results), "--quiet"]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(child.pid)
    peaks: dict[str, float] = defaultdict(float)
    peak_total = 0.0
    while child.poll() is None:
        now: dict[str, float] = defaultdict(float)
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for process in tree:
            try:
                now[kind_of(process, root.pid)] += process.memory_full_info().pss / 2**20
            except psutil.Error:
                continue
        for kind, mb in now.items():
            peaks[kind] = max(peaks[kind], mb)
        peak_total = max(peak_total, sum(now.values()))
        time.sleep(0.1)
    ended = time.time()
    wall = time.perf_counter() - started
    if child.returncode:
        raise RuntimeError(f"{name}: raysim exited {child.returncode}: {child.stderr.read().decode()[-2000:]}")
    (run_dir,) = results.glob("*/*")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"workload": name, "peak_total_mb": peak_total, "peaks_mb": dict(sorted(peaks.items())), "wall_s": wall,
            "after_last_round_s": ended - (run_dir / "rounds.parquet").stat().st_mtime,
            "startup_s": summary.get("startup_s"), "total_s": summary.get("total_s")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="W1,W2")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "footprint.json")
    args = parser.parse_args()
    rows = []
    for _ in range(args.repeat):
        for name in args.only.split(","):
            with tempfile.TemporaryDirectory() as folder:
                rows.append(measure(name, Path(folder)))
    for row in rows:
        print(f"\n{row['workload']}: peak of all processes {row['peak_total_mb']:.0f} MB, whole process "
              f"{row['wall_s']:.1f} s (start-up {row['startup_s']:.1f} s), {row['after_last_round_s']:.1f} s "
              "after the last round was written")
        print("| process kind | peak PSS (MB) |\n|---|---|")
        for kind, mb in row["peaks_mb"].items():
            print(f"| {kind} | {mb:.0f} |")
    args.out.write_text(json.dumps({"machine": f"{platform.node()} {psutil.cpu_count()} cores "
                                               f"{psutil.virtual_memory().total / 2**30:.0f} GB", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
