"""Where a run's start-up goes: its phases, and the CPU each process kind spends (issue 36, item 3).

    python benchmarks/startup.py                          # W2, 1 round, 3 repeats
    python benchmarks/startup.py --only W1,W2 --repeat 5 --rounds 2

Each repeat runs the workload (benchmarks/footprint.py's W1-W3) as ``raysim run`` in a subprocess,
the whole process as a user starts it, and reads:

- the phases of its start-up from its ``summary.json`` (``startup_phases``, marked by
  ``raysim.api.run``; a commit older than them has none, the rest is measured alike): when
  ``run`` was entered, Ray started, the data was prepared and in the object store, the model
  was built by the first client actor (which has imported torch), the driver actor and every
  client actor answered, the run folder was made (``startup_s``), and the first round ended;
  each with the ``raysim`` process's own CPU seconds so far;
- the time before ``run`` (interpreter start and imports) and after the summary was written;
- the CPU seconds (user + system) each process kind of the run's tree used over the whole
  process, from /proc sampled every 0.05 s (a process's last sample: a process that lives less
  than that is missed), and how many processes of each kind were started.

Wall-clock phases are only comparable on an otherwise idle machine; CPU seconds move much less
with load, and on a machine with few cores they are what the start-up is bound by. Prints
medians and writes JSON (benchmarks/startup.json) with every repeat and the environment. To
measure an older commit, copy this file, footprint.py and environment.py into its checkout and
run it there (``raysim run`` is imported from the current folder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import psutil

from environment import environment  # what the figures ran with (benchmarks/environment.py)
from footprint import ROOT, WORKLOADS, command, kind_of

SAMPLE_S = 0.05


def _kind(process: psutil.Process, root: int) -> str:
    """footprint.py's kind, but a process whose command line names the raylet only in its
    arguments is an agent or a worker that has not set its title (``ray::...``) yet."""
    kind = kind_of(process, root)
    if kind != "raylet" or process.name() == "raylet":
        return kind
    line = " ".join(process.cmdline())
    return "dashboard agent" if "dashboard/agent.py" in line else "Ray worker (starting)"


def traced(cmd: list[str]) -> dict:
    """Runs ``cmd``; its wall time, when it ended, and the CPU seconds and process count per kind
    of its process tree (each process's CPU at its last sample)."""
    started_at = time.time()
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(child.pid)
    seen: dict[int, tuple[str, float]] = {}  # pid -> (its last kind, CPU seconds at its last sample)
    while child.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for process in tree:
            try:
                with process.oneshot():
                    kind = _kind(process, root.pid)
                    times = process.cpu_times()
            except psutil.Error:
                continue
            if process.pid in seen and (kind == "gone" or kind.startswith("other")):  # exiting: cmdline empty
                kind = seen[process.pid][0]
            if kind != "gone":
                seen[process.pid] = (kind, times.user + times.system)
        time.sleep(SAMPLE_S)
    ended_at = time.time()
    if child.returncode:
        raise RuntimeError(f"{cmd[1:3]} exited {child.returncode}: {child.stderr.read().decode()[-2000:]}")
    cpu: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for kind, seconds in seen.values():
        cpu[kind] += seconds
        count[kind] += 1
    return {"started_at": started_at, "ended_at": ended_at, "wall_s": ended_at - started_at,
            "cpu_s": dict(sorted(cpu.items())), "processes": dict(sorted(count.items()))}


def measure(name: str, rounds: int) -> dict:
    """One ``raysim run`` of workload ``name`` cut to ``rounds``: its phases and its CPU by kind."""
    with tempfile.TemporaryDirectory() as folder:
        cmd = command("raysim", name, Path(folder)) + ["--set", f"run.rounds={rounds}", "--set",
                                                          f"run.eval_every={rounds}"]
        trace = traced(cmd)
        (run_dir,) = (Path(folder) / "results").glob("*/*")
        summary = json.loads((run_dir / "summary.json").read_text())
        written = (run_dir / "summary.json").stat().st_mtime
        first_round = float(pd.read_parquet(run_dir / "rounds.parquet")["round_wall_s"].iloc[0])
    entered = written - summary["total_s"]  # summary.json is written right after total_s is taken
    return {
        "wall_s": trace["wall_s"], "before_run_s": entered - trace["started_at"],
        "after_summary_s": trace["ended_at"] - written, "startup_s": summary["startup_s"],
        "total_s": summary["total_s"], "first_round_wall_s": first_round, "accuracy": summary["final_accuracy"],
        "phases": summary.get("startup_phases", []), "cpu_s": trace["cpu_s"], "processes": trace["processes"],
    }


def medians(repeats: list[dict]) -> dict:
    """Every figure's median over the repeats (phases by name, CPU and counts by process kind)."""
    out = {k: statistics.median(r[k] for r in repeats) for k, v in repeats[0].items() if isinstance(v, float)}
    names = [m["phase"] for m in repeats[0]["phases"]]
    out["phases"] = [{"phase": p, **{k: statistics.median(next(m[k] for m in r["phases"] if m["phase"] == p)
                                                         for r in repeats) for k in ("at_s", "process_cpu_s")}}
                     for p in names]
    for table in ("cpu_s", "processes"):
        kinds = sorted({k for r in repeats for k in r[table]})
        out[table] = {k: statistics.median(r[table].get(k, 0) for r in repeats) for k in kinds}
    return out


def report(name: str, m: dict, repeats: int) -> None:
    print(f"\n{name}: medians of {repeats}; whole process {m['wall_s']:.2f} s, before run() {m['before_run_s']:.2f} s, "
          f"start-up {m['startup_s']:.2f} s, first round {m['first_round_wall_s']:.3f} s, "
          f"after the summary {m['after_summary_s']:.2f} s")
    print("| phase ended | s since run() | step s | raysim process CPU s (cumulative) |\n|---|---:|---:|---:|")
    previous = 0.0
    for mark in m["phases"]:
        print(f"| {mark['phase']} | {mark['at_s']:.3f} | {mark['at_s'] - previous:.3f} | {mark['process_cpu_s']:.2f} |")
        previous = mark["at_s"]
    print("| process kind | processes | CPU s (whole process) |\n|---|---:|---:|")
    for kind, seconds in sorted(m["cpu_s"].items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {m['processes'][kind]:g} | {seconds:.2f} |")
    print(f"| all | {sum(m['processes'].values()):g} | {sum(m['cpu_s'].values()):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="W2", help="comma-separated: " + ", ".join(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1, help="rounds per run (the start-up and the first round)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "startup.json")
    args = parser.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or args.repeat < 1 or args.rounds < 1:
        parser.error(f"--only takes {', '.join(WORKLOADS)} (got {unknown}); --repeat and --rounds at least 1")
    results = []
    for name in names:
        repeats = [measure(name, args.rounds) for _ in range(args.repeat)]
        results.append({"workload": name, "rounds": args.rounds, "repeats": repeats, "median": medians(repeats)})
        report(name, results[-1]["median"], len(repeats))
    args.out.write_text(json.dumps({"environment": environment(), "command": " ".join(sys.argv),
                                    "workloads": results}, indent=1))


if __name__ == "__main__":
    main()
