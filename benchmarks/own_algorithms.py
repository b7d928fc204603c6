"""The three user packages of ``examples/`` (FedDyn, MOON, Ditto) against raysim's FedAvg, FedProx
and SCAFFOLD: Fashion-MNIST, 100 clients, Dirichlet(beta) label skew for beta 0.1 and 0.5, the
FedAvg CNN, 10 clients a round, 1 epoch of batch 50 at lr 0.05, over several seeds.

Each run is ``raysim run`` of the example's own scenario file (the built-ins run FedDyn's file with
its user keys reset by ``--set``), with the package on ``PYTHONPATH`` as a user runs it, and
``run.seed`` set per seed (it draws the partition, the initial model, the selection and the
batches: ``data.seed`` is unset). FedAvg runs twice, weighting clients by samples (raysim's
default) and uniformly, because SCAFFOLD's row averages uniformly and FedDyn's server takes an
unweighted mean of its own: each row records the weighting its run used.

Per run: the test accuracy of the global model at the last round, the mean of the last ``--last-evals``
evaluations (the test set is scored every ``--eval-every`` rounds; the rounds averaged are
recorded), the best, and the first round at or above ``--target``; for Ditto the mean personalised
and global accuracy of the clients' held-out 20% over the last ``--last`` rounds' participants;
for MOON the client-rounds that are a client's first participation, where the previous model is
the global one and the contrastive term is the constant log 2 (no gradient). Per algorithm and
beta: the mean over seeds with a 95% t-interval, and the same for the per-seed difference from
FedAvg (samples) on the same seed, the same partition and initial model.

The sweep is long (2-6 minutes a run on 2 cores), so each finished run is written to the JSON at
once and a rerun skips the runs already there (same rounds and evaluation settings):

    python benchmarks/own_algorithms.py --rounds 30 --betas 0.1 0.5 --seeds 0 1 2

Writes benchmarks/own_algorithms.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FEDDYN = EXAMPLES / "feddyn" / "fmnist_feddyn.toml"  # the shared setup; its [algorithm] (FedDyn's halves) is reset
BUILT_IN = ["algorithm.kind=''", "algorithm.options={}"]
RUNS = {
    "FedAvg": (FEDDYN, [*BUILT_IN, "server.strategy=fedavg"]),
    "FedAvg (uniform)": (FEDDYN, [*BUILT_IN, "server.strategy=fedavg", "server.weighting=uniform"]),
    "FedProx (mu 0.01)": (FEDDYN, [*BUILT_IN, "server.strategy=fedavg", "client.proximal_mu=0.01"]),
    "SCAFFOLD": (FEDDYN, [*BUILT_IN, "server.strategy=scaffold", "server.weighting=uniform"]),
    "FedDyn (alpha 0.01)": (FEDDYN, []),
    "MOON (mu 1, tau 0.5)": (EXAMPLES / "moon" / "fmnist_moon.toml", []),
    "Ditto (lambda 0.1)": (EXAMPLES / "ditto" / "fmnist_ditto.toml", []),
}
# the paired references: FedAvg as raysim runs it, and weighted as SCAFFOLD and FedDyn are (the algorithm alone)
BASELINES = {"FedAvg": "fedavg", "FedAvg (uniform)": "fedavg_uniform"}
PACKAGES = ("raysim", "torch", "ray", "numpy", "pandas")


def run_one(scenario: Path, sets: list[str], *, beta: float, seed: int, rounds: int,
            eval_every: int) -> tuple[pd.DataFrame, pd.DataFrame, dict, float]:
    """One ``raysim run`` in a fresh results folder, removed afterwards: its rounds and clients
    tables, its scenario as the run recorded it (what ``--set`` made of the file) and its wall time."""
    results = Path(tempfile.mkdtemp(prefix="raysim-own-"))
    sets = [*sets, f"run.seed={seed}", f"run.rounds={rounds}", f"run.eval_every={eval_every}",
            f"data.partition={{kind='dirichlet',beta={beta}}}", "ray.num_cpus=2"]
    command = [sys.executable, "-m", "raysim", "run", str(scenario), "--results", str(results), "--quiet"]
    for assignment in sets:
        command += ["--set", assignment]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(scenario.parent), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{scenario.name} {sets}: exit {done.returncode}\n{done.stderr[-3000:]}")
        (run_dir,) = results.glob("*/*")
        return (pd.read_parquet(run_dir / "rounds.parquet"), pd.read_parquet(run_dir / "clients.parquet"),
                tomllib.loads((run_dir / "scenario.toml").read_text()), time.perf_counter() - started)
    finally:
        shutil.rmtree(results, ignore_errors=True)


def weighting_of(scenario: dict) -> str:
    """How the run's server weighted its clients: ``server.weighting`` for a built-in strategy; a
    user strategy (``package:Class``, or the server half of ``[algorithm]``) averages by its own
    rule, which the key does not reach."""
    server = scenario.get("server", {})
    strategy = scenario.get("algorithm", {}).get("kind") or server.get("strategy", "fedavg")
    return f"{strategy}'s own" if ":" in strategy else server.get("weighting", "samples")


def first_participations(clients: pd.DataFrame) -> dict:
    """Applied client-rounds, and how many of them are the client's first: there MOON's previous
    model is the global one, the two similarities are equal and the contrastive term gives no gradient."""
    applied = clients[clients.status == "applied"]
    return {"client_rounds": len(applied), "first_client_rounds": int(applied.client_id.nunique())}


def measure(rounds: pd.DataFrame, clients: pd.DataFrame, *, target: float, last: int, last_evals: int) -> dict:
    """One run's figures (module docstring)."""
    scored = rounds.dropna(subset=["test_accuracy"])
    reached = scored[scored.test_accuracy >= target]
    tail = scored.tail(last_evals)
    row = {"final_accuracy": round(float(scored.test_accuracy.iloc[-1]), 4),
           "last_evals_mean": round(float(tail.test_accuracy.mean()), 4),
           "last_evals_rounds": [int(r) for r in tail["round"]],
           "best_accuracy": round(float(scored.test_accuracy.max()), 4),
           "rounds_to_target": int(reached["round"].iloc[0]) if len(reached) else None}
    if "metric_personal_accuracy" in clients.columns:
        recent = clients[(clients.status == "applied") & (clients["round"] > rounds["round"].max() - last)]
        row["personal_accuracy"] = round(float(recent.metric_personal_accuracy.mean()), 4)
        row["local_global_accuracy"] = round(float(recent.metric_global_accuracy.mean()), 4)
    if "metric_contrastive_loss" in clients.columns:
        row |= first_participations(clients)
    return row


def interval(values: list[float]) -> dict:
    """Mean and the half-width of its 95% t-interval over seeds (None for one seed)."""
    n = len(values)
    half = (float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else None)
    return {"mean": round(float(np.mean(values)), 4), "ci95": None if half is None else round(half, 4), "n": n}


def summarise(runs: list[dict]) -> list[dict]:
    """Per beta and algorithm, in RUNS order: the seeds' means with 95% intervals, and the
    per-seed differences from each of BASELINES on the seeds both have."""
    rows = []
    for beta in sorted({r["beta"] for r in runs}):
        at = {(r["algorithm"], r["seed"]): r for r in runs if r["beta"] == beta}
        for name in RUNS:
            mine = sorted((r for (a, _), r in at.items() if a == name), key=lambda r: r["seed"])
            if not mine:
                continue
            row = {"beta": beta, "algorithm": name, "seeds": [r["seed"] for r in mine],
                   "weighting": sorted({r["weighting"] for r in mine})}
            for key in ("final_accuracy", "last_evals_mean", "best_accuracy"):
                row[key] = interval([r[key] for r in mine])
            for baseline, slug in BASELINES.items():
                paired = [(r, at[(baseline, r["seed"])]) for r in mine if (baseline, r["seed"]) in at]
                if name != baseline and paired:
                    for key in ("final_accuracy", "last_evals_mean"):
                        row[f"{key}_minus_{slug}"] = interval([r[key] - base[key] for r, base in paired])
            for key in ("personal_accuracy", "local_global_accuracy"):
                if key in mine[0]:
                    row[key] = interval([r[key] for r in mine])
            if "client_rounds" in mine[0]:
                row["client_rounds"] = sum(r["client_rounds"] for r in mine)
                row["first_client_rounds"] = sum(r["first_client_rounds"] for r in mine)
            rows.append(row)
    return rows


def provenance() -> dict:
    """The versions and commit a run was measured with."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {"python": platform.python_version(), **{p: version(p) for p in PACKAGES},
            "commit": commit.stdout.strip() or None}


def load(out: Path, settings: dict) -> list[dict]:
    """The runs already measured with these settings; a file measured otherwise is refused, not mixed in."""
    if not out.exists():
        return []
    try:
        recorded = json.loads(out.read_text())
        same = recorded["settings"] == settings
        runs = recorded["runs"]
    except (ValueError, KeyError, TypeError):
        sys.exit(f"error: {out} is not a sweep of this script (no settings/runs): move it aside or pass --out")
    if not same:
        sys.exit(f"error: {out} was measured with {recorded['settings']}, not {settings}: "
                 "pass the same --rounds/--eval-every/--target/--last/--last-evals, or another --out")
    return runs


def save(out: Path, *, machine: str, settings: dict, runs: list[dict]) -> None:
    """The whole file, replaced in one rename, so an interrupted sweep keeps every finished run."""
    text = json.dumps({"machine": machine, "settings": settings, "runs": runs, "summary": summarise(runs)},
                      indent=2) + "\n"
    partial = out.with_suffix(".json.partial")
    partial.write_text(text)
    os.replace(partial, out)


def show(summary: list[dict]) -> None:
    def cell(value: dict | None) -> str:
        if value is None:
            return ""
        return f"{value['mean']:.4f}" + ("" if value["ci95"] is None else f" ± {value['ci95']:.4f}")

    print(f"{'beta':>5} {'algorithm':22} {'n':>2} {'weighting':18} {'final':>16} {'last evals':>16} "
          f"{'final - FedAvg':>17} {'last - FedAvg':>17}")
    for r in summary:
        print(f"{r['beta']:>5} {r['algorithm']:22} {r['final_accuracy']['n']:>2} {','.join(r['weighting']):18} "
              f"{cell(r['final_accuracy']):>16} {cell(r['last_evals_mean']):>16} "
              f"{cell(r.get('final_accuracy_minus_fedavg')):>17} {cell(r.get('last_evals_mean_minus_fedavg')):>17}")


def markdown(sweep: dict) -> str:
    """The README's table, from the sweep's runs: means over seeds with their 95% t-interval, and
    the differences from FedAvg and FedAvg (uniform) paired by seed; the README's test checks it
    against the JSON verbatim."""
    def cell(value: dict | None, sign: str = "") -> str:
        if value is None:
            return ""
        return f"{value['mean']:{sign}.3f}" + ("" if value["ci95"] is None else f" ± {value['ci95']:.3f}")

    last = sweep["settings"]["last_evals"]
    lines = [f"| beta | algorithm | client weighting | seeds | final accuracy | mean of the last {last} evaluations | "
             f"final, minus FedAvg's | last {last}, minus FedAvg's | final, minus FedAvg (uniform)'s | "
             f"last {last}, minus FedAvg (uniform)'s |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in summarise(sweep["runs"]):
        lines.append(f"| {r['beta']} | {r['algorithm']} | {', '.join(r['weighting'])} | "
                     f"{', '.join(map(str, r['seeds']))} | {cell(r['final_accuracy'])} | {cell(r['last_evals_mean'])} | "
                     + "".join(f"{cell(r.get(f'{key}_minus_{slug}'), '+')} | " for slug in BASELINES.values()
                               for key in ("final_accuracy", "last_evals_mean")).rstrip())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=2, help="rounds between scorings of the test set")
    parser.add_argument("--last-evals", type=int, default=5, help="evaluations averaged at the end")
    parser.add_argument("--target", type=float, default=0.7)
    parser.add_argument("--last", type=int, default=10, help="rounds whose Ditto participants are averaged")
    parser.add_argument("--only", action="append", help="run only these algorithms (names as in the table)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("own_algorithms.json"))
    parser.add_argument("--table", action="store_true", help="print the README's table of --out and run nothing")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads(args.out.read_text())))
        return
    settings = {"rounds": args.rounds, "eval_every": args.eval_every, "last_evals": args.last_evals,
                "target": args.target, "last": args.last}
    machine = f"{platform.node()} {psutil.cpu_count()} cores {psutil.virtual_memory().total / 2**30:.0f} GB"
    runs = load(args.out, settings)
    done = {(r["algorithm"], r["beta"], r["seed"]) for r in runs}
    for beta in args.betas:
        for seed in args.seeds:  # seed-major: a partial sweep has whole seeds of every algorithm
            for name, (scenario, sets) in RUNS.items():
                if (args.only and not any(name.startswith(o) for o in args.only)) or (name, beta, seed) in done:
                    continue
                rounds, clients, recorded, wall = run_one(scenario, sets, beta=beta, seed=seed, rounds=args.rounds,
                                                          eval_every=args.eval_every)
                runs.append({"algorithm": name, "beta": beta, "seed": seed, "weighting": weighting_of(recorded),
                             **measure(rounds, clients, target=args.target, last=args.last,
                                       last_evals=args.last_evals),
                             "wall_s": round(wall), "versions": provenance()})
                save(args.out, machine=machine, settings=settings, runs=runs)
                print(json.dumps(runs[-1]), flush=True)
    print(f"\n{machine}; {settings}")
    show(summarise(runs))


if __name__ == "__main__":
    main()
