"""Contribution estimates against exact Shapley, and the cost of GTG-Shapley in a round.

    python benchmarks/contribution.py                  # both parts
    python benchmarks/contribution.py --part accuracy  # approximate methods vs exact
    python benchmarks/contribution.py --part cost      # GTG with 10 clients per round, Ray executor

``accuracy`` runs each validation scenario once per method, that method alone (so its utility
calls and seconds are its own, with no scores shared with another method), and compares every
round's values with exact Shapley's on the same round (training does not depend on the
valuation, so every run sees the same games): Spearman rank correlation, the efficiency-sum
error |sum phi_hat - sum phi| (exact Shapley is efficient, so sum phi = v(N) - v(empty)), the
largest absolute error, utility calls and seconds per round; means over rounds (Spearman over
the rounds where both rankings vary). ``cost`` runs the Fashion-MNIST scenario (10 clients per
round) on the Ray executor with GTG and reports, per round, GTG's seconds against the rest of
the round. Prints markdown tables and writes JSON (benchmarks/contribution.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from raysim.api import run  # noqa: E402
from raysim.results import load  # noqa: E402
from raysim.scenario.sections import load_scenario  # noqa: E402

SCENARIOS = {"fmnist, 10 of 10 clients": ROOT / "scenarios/contribution/fmnist_free_riders.toml",
             "synthetic, 8 of 30 clients": ROOT / "scenarios/contribution/synthetic_methods.toml"}
METHODS = ("exact", "loo", "tmc", "gtg")


def valued(path: Path, method: str, root: Path, *extra: str) -> pd.DataFrame:
    """The contributions table of one run of ``path`` valuing with ``method`` alone."""
    scenario = load_scenario(path, (f'contribution.methods=["{method}"]', *extra))
    outcome = run(scenario, results_root=root)
    results = load(outcome.run_dir)
    return results.contributions.merge(results.rounds[["round", "round_wall_s"]], on="round")


def against_exact(frames: dict[str, pd.DataFrame]) -> list[dict]:
    exact = frames["exact"].set_index(["round", "client_id"]).value
    rows = []
    for method, frame in frames.items():
        values = frame.set_index(["round", "client_id"]).value.loc[exact.index]
        rhos, efficiency, worst = [], [], []
        for round_number, want in exact.groupby(level="round"):
            got = values.loc[want.index]
            if got.nunique() > 1 and want.nunique() > 1:
                rhos.append(spearmanr(got, want).statistic)
            efficiency.append(abs(got.sum() - want.sum()))
            worst.append(float((got - want).abs().max()))
        per_round = frame.groupby("round").first()
        rows.append({"method": method, "spearman": float(np.mean(rhos)) if rhos else float("nan"),
                     "rounds_ranked": len(rhos), "efficiency_error": float(np.mean(efficiency)),
                     "max_abs_error": float(np.mean(worst)), "utility_calls": float(per_round.utility_calls.mean()),
                     "seconds": float(per_round.seconds.mean()),
                     "stopped": ", ".join(f"{k} {v}" for k, v in frame.groupby("round").stopped.first().value_counts().items())})
    return rows


def accuracy(root: Path) -> dict:
    tables = {}
    for name, path in SCENARIOS.items():
        tables[name] = against_exact({m: valued(path, m, root) for m in METHODS})
        print(f"\n### {name}\n\n| method | Spearman vs exact | efficiency-sum error | max abs error | "
              "utility calls / round | seconds / round | rounds ended |\n|---|---:|---:|---:|---:|---:|---|")
        for r in tables[name]:
            print(f"| {r['method']} | {r['spearman']:.3f} ({r['rounds_ranked']} rounds) | {r['efficiency_error']:.4f} | "
                  f"{r['max_abs_error']:.4f} | {r['utility_calls']:.0f} | {r['seconds']:.3f} | {r['stopped']} |", flush=True)
    return tables


def cost(root: Path) -> list[dict]:
    frame = valued(SCENARIOS["fmnist, 10 of 10 clients"], "gtg", root, 'run.executor="ray"')
    per_round = frame.groupby("round").agg(gtg_s=("seconds", "first"), round_wall_s=("round_wall_s", "first"),
                                           utility_calls=("utility_calls", "first"), stopped=("stopped", "first"))
    rows = []
    print("\n| round | GTG s | rest of the round s | GTG / rest | utility calls | ended |\n|---:|---:|---:|---:|---:|---|")
    for round_number, r in per_round.iterrows():
        rest = r.round_wall_s - r.gtg_s
        rows.append({"round": int(round_number), "gtg_s": float(r.gtg_s), "rest_s": float(rest),
                     "ratio": float(r.gtg_s / rest), "utility_calls": int(r.utility_calls), "stopped": r.stopped})
        print(f"| {round_number} | {r.gtg_s:.2f} | {rest:.2f} | {r.gtg_s / rest:.2f} | {r.utility_calls} | {r.stopped} |",
              flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["accuracy", "cost", "all"], default="all")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/contribution.json")
    args = parser.parse_args()
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    out = {"machine": machine}
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("accuracy", "all"):
            out["accuracy"] = accuracy(Path(tmp))
        if args.part in ("cost", "all"):
            out["gtg_cost"] = cost(Path(tmp))
    args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
