"""Client selection that sees outcomes: uniform, Power-of-Choice and Oort on one heterogeneous
population, over seeds.

The population is the README's policy comparison (``scenarios/policies/sync.toml``: 200
Fashion-MNIST clients, the FedAvg 2NN, 20 a round under a sync barrier, lognormal device speeds
with 30% of devices 10x slower, 10% dropout per task) with Dirichlet(0.3) label skew
(``data.partition = {kind = "dirichlet", beta = 0.3}``), run for ``--horizon`` simulated seconds
with the test set scored every round. Per run: the simulated time at which test accuracy first
reaches ``--target`` (and the server steps it took), the accuracy at ``--at`` simulated seconds (the last evaluation at or
before it), the final accuracy and the server steps taken; per selector, the seeds' means with
95% t-intervals, and per seed the ratio of uniform's time to target to the selector's.

Selectors: ``uniform`` (raysim's default), ``power_of_choice`` with d = 2m = 40 candidates (the
last reported losses, no extra forward pass: sim/selection/power_of_choice.py) and ``oort``
with the authors' defaults (sim/selection/oort.py).

    python benchmarks/selection.py --seeds 0 1 2

Each finished run is written to the JSON at once; a rerun skips the runs already there.
Writes benchmarks/selection.json (``--out``); ``--table`` prints the README's table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from environment import environment
from own_algorithms import interval, run_one as run_algorithm

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "policies" / "sync.toml"
SELECTORS = {
    "uniform": "selection.selector='uniform'",
    "power_of_choice (d 40)": "selection.selector={kind='power_of_choice',d=40}",
    "oort": "selection.selector='oort'",
}


def run_one(selector: str, seed: int, horizon: float) -> tuple[pd.DataFrame, float]:
    """One ``raysim run`` of the population with ``selector`` (own_algorithms.run_one: a fresh
    results folder, Dirichlet(0.3) labels, ``run.seed``): its rounds and wall time."""
    sets = [SELECTORS[selector], "run.name='selection'", f"run.sim_time_limit={horizon}"]
    rounds, _, _, wall = run_algorithm(SCENARIO, sets, beta=0.3, seed=seed, rounds=100000, eval_every=1)
    return rounds, wall


def measure(rounds: pd.DataFrame, *, target: float, at: float) -> dict:
    scored = rounds.dropna(subset=["test_accuracy"])
    reached = scored[scored.test_accuracy >= target]
    before = scored[scored.sim_time <= at]
    return {"time_to_target_s": round(float(reached.sim_time.iloc[0]), 1) if len(reached) else None,
            "rounds_to_target": int(reached["round"].iloc[0]) if len(reached) else None,
            "accuracy_at": round(float(before.test_accuracy.iloc[-1]), 4) if len(before) else None,
            "final_accuracy": round(float(scored.test_accuracy.iloc[-1]), 4),
            "server_steps": int(rounds["round"].max())}


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    uniform = {r["seed"]: r for r in runs if r["selector"] == "uniform"}
    for name in SELECTORS:
        mine = sorted((r for r in runs if r["selector"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        row = {"selector": name, "seeds": [r["seed"] for r in mine],
               "reached": sum(r["time_to_target_s"] is not None for r in mine)}
        for key in ("time_to_target_s", "rounds_to_target", "accuracy_at", "final_accuracy", "server_steps"):
            values = [r[key] for r in mine if r[key] is not None]
            row[key] = interval(values) if values else None
        ratios = [uniform[r["seed"]]["time_to_target_s"] / r["time_to_target_s"] for r in mine
                  if r["seed"] in uniform and r["time_to_target_s"] and uniform[r["seed"]]["time_to_target_s"]]
        row["speedup_over_uniform"] = interval(ratios) if ratios and name != "uniform" else None
        rows.append(row)
    return rows


def markdown(sweep: dict) -> str:
    settings = sweep["settings"]

    def cell(value: dict | None, digits: int = 4) -> str:
        if value is None:
            return "n/a"
        half = "" if value["ci95"] is None else f" ± {value['ci95']:.{digits}f}"
        return f"{value['mean']:.{digits}f}{half}"

    lines = [f"| selector | seeds | reached {settings['target']:.0%} | sim. time to {settings['target']:.0%} (s) "
             f"| uniform's time / this one's | rounds to {settings['target']:.0%} | accuracy at {settings['at']:.0f} s | final accuracy "
             f"({settings['horizon']:.0f} s) | server steps |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in sweep["summary"]:
        lines.append(f"| {row['selector']} | {len(row['seeds'])} | {row['reached']} | {cell(row['time_to_target_s'], 1)} "
                     f"| {cell(row['speedup_over_uniform'], 2)} | {cell(row['rounds_to_target'], 1)} | {cell(row['accuracy_at'])} | "
                     f"{cell(row['final_accuracy'])} | {cell(row['server_steps'], 0)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--horizon", type=float, default=1200.0, help="simulated seconds per run")
    parser.add_argument("--target", type=float, default=0.7)
    parser.add_argument("--at", type=float, default=600.0, help="simulated time of the fixed-time accuracy")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("selection.json"))
    parser.add_argument("--table", action="store_true", help="print the README's table of --out and run nothing")
    args = parser.parse_args()
    settings = {"horizon": args.horizon, "target": args.target, "at": args.at}
    if args.table:
        print(markdown(json.loads(args.out.read_text())))
        return
    recorded = json.loads(args.out.read_text()) if args.out.exists() else {"settings": settings, "runs": []}
    if recorded["settings"] != settings:
        sys.exit(f"error: {args.out} was measured with {recorded['settings']}: pass the same options or another --out")
    runs = recorded["runs"]
    for seed in args.seeds:
        for name in SELECTORS:
            if any(r["selector"] == name and r["seed"] == seed for r in runs):
                continue
            rounds, wall = run_one(name, seed, args.horizon)
            runs.append({"selector": name, "seed": seed, **measure(rounds, target=args.target, at=args.at),
                         "wall_s": round(wall)})
            print(json.dumps(runs[-1]), flush=True)
            sweep = {"settings": settings, "environment": environment(), "runs": runs, "summary": summarise(runs)}
            partial = args.out.with_suffix(".json.partial")
            partial.write_text(json.dumps(sweep, indent=2) + "\n")
            os.replace(partial, args.out)
    print(markdown({"settings": settings, "summary": summarise(runs)}))


if __name__ == "__main__":
    main()
