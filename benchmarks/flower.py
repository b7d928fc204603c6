"""The same Flower app on Flower's simulation engine and on raysim, alternating, on one machine.

    python3 benchmarks/flower.py                      # 10 nodes, 5 rounds, 3 repeats, 2000 examples
    python3 benchmarks/flower.py --nodes 4 --rounds 2 --repeats 1 --train-examples 600   # a dry run

The app: ``tests/flower_apps/message_app.py`` (Flower 1.42's PyTorch quickstart on Fashion-MNIST,
Message API, FedAvg with central evaluation), run config ``num-server-rounds = --rounds``,
``fraction-train = 0.5``, ``fraction-evaluate = 1.0``, ``lr = 0.05``, ``local-epochs = 1``,
``train-examples = --train-examples``; ``--nodes`` nodes; 1 CPU per ClientApp and 2 CPUs for Ray
on both sides (2 actors each). Each repeat runs Flower, then raysim, each as its own subprocess
from the repository root:

- **Flower**: ``benchmarks/flower_engine.py`` with ``--flower-python``, calling
  ``flwr.simulation.run_simulation``. ``flwr[simulation]`` pins ray 2.55.1 and raysim runs on
  ray 2.60, so Flower gets its own venv that reuses the system's torch (and its flwr 1.42.0)::

      python3 -m venv --system-site-packages /tmp/flwr-sim
      /tmp/flwr-sim/bin/pip install -q "flwr[simulation]==1.42.0" "ray==2.55.1"
      /tmp/flwr-sim/bin/python -c "import ray, flwr, torch; assert ray.__version__ == '2.55.1'"

  ``run_simulation`` takes no run config in flwr 1.42: the driver wraps the apps to set
  ``context.run_config`` (see flower_engine.py). Flower's telemetry is off
  (``FLWR_TELEMETRY_ENABLED=0``).
- **raysim**: ``python3 -m raysim run <scenario> --results <tmp> --quiet`` on a generated
  ``[flower]`` scenario naming the same apps (unwrapped) and run config; rounds.parquet and
  summary.json give its timings.

Measured for each (the table shows medians over the repeats; the JSON keeps every repeat):

- ``round_s``: wall seconds per server round, the median over rounds 2..R (round 1 also holds
  Flower's start-up, whose Ray starts while its ServerApp already waits, and both sides' first
  imports in the actors). A round ends where the next round's first (train) message goes out, the
  last where the ServerApp returns: raysim's ``wall_time`` diffs; Flower's timed ``send_and_receive``.
  It holds the train call, the evaluate call and the ServerApp's central evaluation.
- ``first_round_end_s``: from the engine's entry (``run_flower`` / ``run_simulation``) to the end
  of round 1: start-up and the first round together, the fair start-up comparison.
- ``startup_s``: raysim's own (summary.json: Ray started, actors up with the ClientApp imported);
  Flower's: from ``run_simulation`` to its first ClientApp call starting in an actor (Flower builds
  its actor pool without waiting on it, so nothing earlier marks "ready").
- ``engine_s``: the engine's entry to its return (raysim's ``total_s``); ``process_s``: the
  subprocess from spawn to exit, as this script sees it (interpreter, imports, Ray's shutdown).
- ``peak_pss_mb``: the peak of the summed PSS (``memory_full_info().pss``) of the subprocess and
  all its descendants (Ray's daemons, workers and actors), sampled every 0.2 s; the tree is new,
  so its baseline is 0. ``peak_used_delta_mb``: the machine's used memory (``virtual_memory``)
  at its peak minus just before the spawn, a cross-check that is noisy on a shared machine.
- the final round's examples-weighted ``eval_acc`` of the evaluate replies (Flower: its
  strategy's aggregated ``evaluate_metrics_clientapp``; raysim: ``test_eval_acc``), and Flower's
  central accuracy (``evaluate_metrics_serverapp``), to show both ran the same workload. They need
  not be equal: the two engines seed the initial model and the node sampling differently (Flower's
  node ids are random), so the sampled nodes differ.
- leftovers: after each run, every process of the tree that is still alive 5 s after the
  subprocess exited (raylet, gcs_server, workers...) is listed and killed (only those: pids seen
  in this run's tree, with their start times). Other ``raylet``/``gcs_server`` processes started
  during the run, outside the tree, are listed but left alone.

Sampling costs both sides the same CPU (2 cores on the development machine): run on a quiet
machine. Writes benchmarks/flower.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import psutil
import tomli_w

from environment import environment  # what the figures ran with (benchmarks/environment.py)

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "benchmarks" / "flower_engine.py"
SAMPLE_S = 0.2
GRACE_S = 5.0  # how long the tree's processes may take to end after the subprocess exited
RAY_DAEMONS = ("raylet", "gcs_server")
MB = 2**20


def run_config(args) -> dict:
    return {"num-server-rounds": args.rounds, "fraction-train": 0.5, "fraction-evaluate": 1.0, "lr": 0.05,
            "local-epochs": 1, "train-examples": args.train_examples}


def scenario_table(args) -> dict:
    return {
        "run": {"name": "flower_bench", "seed": 0},
        "flower": {"server_app": "tests.flower_apps.message_app:server",
                   "client_app": "tests.flower_apps.message_app:app",
                   "num_nodes": args.nodes, "metric": "eval_acc", "loss": "eval_loss",
                   "run_config": run_config(args)},
        "resources": {"num_cpus": 1},
        "ray": {"num_cpus": 2},
    }


# -- one subprocess, its process tree sampled -----------------------------------------------------

def ray_daemons() -> set[tuple[int, float]]:
    found = set()
    for process in psutil.process_iter(["name", "create_time"]):
        if process.info["name"] in RAY_DAEMONS:
            found.add((process.pid, process.info["create_time"]))
    return found


def sampled(command: list[str], folder: Path, env: dict, timeout_s: float) -> dict:
    """Runs ``command`` (stdout and stderr to files in ``folder``), samples its tree's PSS every
    0.2 s, then makes sure nothing of the tree outlives it."""
    daemons_before = ray_daemons()
    used_before = psutil.virtual_memory().used
    out, err = open(folder / "stdout.txt", "wb"), open(folder / "stderr.txt", "wb")
    spawned = time.time()
    child = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err, env=env)
    root = psutil.Process(child.pid)
    seen: dict[int, tuple[float, str]] = {}  # pid -> (create time, name): every process of the tree
    peak_pss = peak_used = 0
    samples = 0
    try:
        while child.poll() is None:
            if time.time() - spawned > timeout_s:
                raise TimeoutError(f"{command[:3]} ran past {timeout_s:.0f} s")
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for process in tree:
                try:
                    if process.pid not in seen:
                        seen[process.pid] = (process.create_time(), process.name())
                    total += process.memory_full_info().pss
                except psutil.Error:
                    continue
            peak_pss = max(peak_pss, total)
            peak_used = max(peak_used, psutil.virtual_memory().used)
            samples += 1
            time.sleep(SAMPLE_S)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        out.close()
        err.close()
        exited = time.time()
        left = end_leftovers(seen)
    stray = sorted(f"{name_of(pid)}[{pid}]" for pid, created in ray_daemons() - daemons_before
                   if pid not in seen and created >= spawned - 1)
    return {"returncode": child.returncode, "process_s": exited - spawned, "spawned": spawned,
            "peak_pss_mb": peak_pss / MB, "peak_used_delta_mb": (peak_used - used_before) / MB,
            "samples": samples, "tree_processes": len(seen),
            "tree_ray_daemons": sorted(name for _, name in seen.values() if name in RAY_DAEMONS),
            "leftovers_killed": left, "other_new_ray_daemons": stray}


def name_of(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "gone"


def end_leftovers(seen: dict[int, tuple[float, str]]) -> list[str]:
    """The tree's processes still alive ``GRACE_S`` after the subprocess exited, killed (only those:
    same pid and start time as seen in the tree)."""

    def alive() -> list[psutil.Process]:
        found = []
        for pid, (created, _) in seen.items():
            try:
                process = psutil.Process(pid)
                if abs(process.create_time() - created) < 0.01 and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except psutil.Error:
                continue
        return found

    deadline = time.time() + GRACE_S
    while (remaining := alive()) and time.time() < deadline:
        time.sleep(0.2)
    names = sorted(f"{seen[p.pid][1]}[{p.pid}]" for p in remaining)
    for process in remaining:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(remaining, timeout=3)
    for process in still:
        try:
            process.kill()
        except psutil.Error:
            pass
    return names


def failed(side: str, folder: Path, measured: dict) -> RuntimeError:
    tail = (folder / "stderr.txt").read_text(errors="replace")[-3000:]
    return RuntimeError(f"{side} exited {measured['returncode']}:\n{tail}")


# -- the two sides ---------------------------------------------------------------------------------

def run_flower(args, folder: Path) -> dict:
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", PYTHONPATH=str(ROOT))
    command = [args.flower_python, str(ENGINE), "--nodes", str(args.nodes),
               "--run-config", json.dumps(run_config(args)), "--probe-dir", str(folder / "probes")]
    measured = sampled(command, folder, env, args.timeout)
    if measured["returncode"]:
        raise failed("flower", folder, measured)
    line = next(line for line in (folder / "stdout.txt").read_text().splitlines()
                if line.startswith("FLOWER_ENGINE_RESULT "))
    run = json.loads(line.split(" ", 1)[1])
    if len(run["round_end_s"]) != args.rounds or run["final_eval_acc"] is None:
        raise RuntimeError(f"flower ran {len(run['round_end_s'])} of {args.rounds} rounds, final eval_acc "
                           f"{run['final_eval_acc']}: see {folder}")
    return {**measured, "round_s": run["round_median_s"], "rounds_s": run["round_s"],
            "first_round_end_s": run["first_round_end_s"], "startup_s": run["first_clientapp_s"],
            "engine_s": run["engine_total_s"], "before_engine_s": run["t_engine"] - measured["spawned"],
            "final_eval_acc": run["final_eval_acc"], "final_eval_loss": run["final_eval_loss"],
            "final_central_accuracy": run["final_central_accuracy"], "final_train_loss": run["final_train_loss"],
            "messages": run["train_messages"] + run["evaluate_messages"],
            "actor_torch_threads": run["actor_torch_threads"], "actors": len(run["actor_pids"]),
            "clientapp_busy_s": run["clientapp_busy_s"], "versions": {k: run[k] for k in ("flwr", "ray", "torch")}}


def run_raysim(args, folder: Path) -> dict:
    import pyarrow.parquet as pq

    scenario = folder / "flower_bench.toml"
    scenario.write_text(tomli_w.dumps(scenario_table(args)))
    results = folder / "results"
    command = [sys.executable, "-m", "raysim", "run", str(scenario), "--results", str(results), "--quiet"]
    measured = sampled(command, folder, dict(os.environ), args.timeout)
    if measured["returncode"]:
        raise failed("raysim", folder, measured)
    (summary_path,) = results.rglob("summary.json")
    summary = json.loads(summary_path.read_text())
    rounds = pq.read_table(summary_path.parent / "rounds.parquet").to_pylist()
    walls = [row["wall_time"] for row in rounds]
    durations = [b - a for a, b in zip(walls, walls[1:])]  # rounds 2..R
    last = rounds[-1]
    if len(rounds) != args.rounds or summary.get("status") != "completed":
        raise RuntimeError(f"raysim recorded {len(rounds)} of {args.rounds} rounds, status {summary.get('status')}")
    return {**measured, "round_s": statistics.median(durations) if durations else None, "rounds_s": durations,
            "first_round_end_s": walls[0], "startup_s": summary["startup_s"], "engine_s": summary["total_s"],
            "final_eval_acc": last.get("test_eval_acc"), "final_eval_loss": last.get("test_loss"),
            "final_central_accuracy": None, "final_train_loss": last.get("train_train_loss"), "messages": int(sum(row["messages"] for row in rounds)),
            "rounds_recorded": len(rounds), "actors": summary.get("num_actors"), "status": summary.get("status"),
            "versions": {"ray": metadata.version("ray"), "flwr": metadata.version("flwr"),
                         "torch": metadata.version("torch")}}


# -- report ----------------------------------------------------------------------------------------

ROWS = [  # (key, label, format)
    ("round_s", "wall s / round (median, rounds 2..R)", "{:.2f}"),
    ("first_round_end_s", "engine entry -> end of round 1 (s)", "{:.2f}"),
    ("startup_s", "start-up (s, see docstring)", "{:.2f}"),
    ("engine_s", "engine entry -> return (s)", "{:.2f}"),
    ("process_s", "process spawn -> exit (s)", "{:.2f}"),
    ("peak_pss_mb", "peak PSS of the process tree (MB)", "{:.0f}"),
    ("peak_used_delta_mb", "peak used memory - baseline (MB)", "{:.0f}"),
    ("messages", "messages sent", "{:.0f}"),
    ("final_eval_acc", "final round eval_acc (clients, weighted)", "{:.4f}"),
    ("final_eval_loss", "final round eval_loss (clients, weighted)", "{:.4f}"),
    ("final_train_loss", "final round train_loss (clients, weighted)", "{:.4f}"),
    ("final_central_accuracy", "final central accuracy (ServerApp)", "{:.4f}"),
]


def median_of(runs: list[dict], key: str):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def table(medians: dict[str, dict]) -> str:
    width = max(len(label) for _, label, _ in ROWS)
    lines = [f"{'':{width}}  {'flower':>10}  {'raysim':>10}  {'flower/raysim':>13}"]
    for key, label, fmt in ROWS:
        f, r = medians["flower"].get(key), medians["raysim"].get(key)
        ratio = f"{f / r:.2f}" if f is not None and r and not key.startswith(("final_", "messages")) else ""
        cells = [fmt.format(v) if v is not None else "-" for v in (f, r)]
        lines.append(f"{label:{width}}  {cells[0]:>10}  {cells[1]:>10}  {ratio:>13}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-examples", type=int, default=2000)
    parser.add_argument("--flower-python", default="/tmp/flwr-sim/bin/python")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run before it is killed")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "flower.json"))
    args = parser.parse_args()
    if not Path(args.flower_python).exists():
        raise SystemExit(f"{args.flower_python} not found: create the Flower venv (see this script's docstring)")

    runs: dict[str, list[dict]] = {"flower": [], "raysim": []}
    with tempfile.TemporaryDirectory(prefix="flower_bench_") as tmp:
        for repeat in range(args.repeats):
            for side, fn in (("flower", run_flower), ("raysim", run_raysim)):
                folder = Path(tmp) / f"{side}{repeat}"
                folder.mkdir()
                result = fn(args, folder)
                runs[side].append(result)
                print(f"repeat {repeat + 1}/{args.repeats} {side}: round {result['round_s'] or float('nan'):.2f} s, "
                      f"process {result['process_s']:.1f} s, peak PSS {result['peak_pss_mb']:.0f} MB, "
                      f"eval_acc {result['final_eval_acc'] or float('nan'):.4f}, "
                      f"leftovers {result['leftovers_killed'] or 'none'}", flush=True)

    medians = {side: {key: median_of(rs, key) for key, _, _ in ROWS} for side, rs in runs.items()}
    print()
    print(f"{args.nodes} nodes, {args.rounds} rounds, {args.train_examples} train examples, "
          f"medians of {args.repeats} repeat(s)")
    print(table(medians))
    for side, rs in runs.items():
        left = sorted({p for r in rs for p in r["leftovers_killed"]})
        other = sorted({p for r in rs for p in r["other_new_ray_daemons"]})
        print(f"{side}: leftovers killed: {left or 'none'}; Ray daemons in its tree per run: "
              f"{rs[0]['tree_ray_daemons']}; actors: {rs[0]['actors']}"
              + (f"; actor torch threads: {rs[0]['actor_torch_threads']}" if side == "flower" else "")
              + (f"; other new Ray daemons (left alone): {other}" if other else ""))

    report = {
        "config": {"nodes": args.nodes, "rounds": args.rounds, "repeats": args.repeats,
                   "train_examples": args.train_examples, "run_config": run_config(args),
                   "client_cpus": 1, "ray_cpus": 2, "order": "flower, raysim alternating"},
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "platform": platform.platform(), "python": platform.python_version()},
        "versions": {side: rs[0]["versions"] for side, rs in runs.items()},
        "environment": environment(),  # raysim's side, in full
        "medians": medians,
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
