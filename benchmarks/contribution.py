"""Contribution estimates against exact Shapley, and the cost of GTG-Shapley in a round.

    python benchmarks/contribution.py                  # every part
    python benchmarks/contribution.py --part accuracy  # approximate methods vs exact
    python benchmarks/contribution.py --part cost      # GTG with 10 clients per round, Ray executor
    python benchmarks/contribution.py --part planted   # the planted scenarios' expected outcomes
    python benchmarks/contribution.py --part incentives  # one budget, four schemes

``accuracy`` runs each validation scenario once per method, that method alone (so its utility
calls and seconds are its own, with no scores shared with another method), and compares every
round's values with exact Shapley's on the same round (training does not depend on the
valuation, so every run sees the same games): Spearman rank correlation, the efficiency-sum
error |sum phi_hat - sum phi| (exact Shapley is efficient, so sum phi = v(N) - v(empty)), the
largest absolute error, utility calls and seconds per round; means over rounds (Spearman over
the rounds where both rankings vary). ``tmc`` and ``gtg`` compute the exact value when
``max_evaluations`` covers all 2^n coalitions of a round, so here they get a budget of
2^k - 1, k the scenario's cohort (``selection.clients_per_round``): 1,023 for Fashion-MNIST's
10, 255 for Synthetic's 8 (``--set contribution.max_evaluations=...``); ``exact`` and ``loo``
keep the scenario's. A round with fewer players than the cohort (Synthetic's dropout) still has
2^n <= 2^k - 1 and is computed exactly (``stopped = "exact"``), so tmc's and gtg's errors are
means over the rounds they estimated only, and the rows say how many those were. ``cost``
runs the Fashion-MNIST scenario (10 clients per round) on the Ray executor with GTG and
reports, per round, GTG's seconds against the rest of the round (at the scenario's budget,
1,024 = 2^10, GTG computes the exact value). ``planted`` runs
scenarios/contribution/{fmnist_free_riders, label_noise, duplicates, size_ladder}.toml and
measures each expected outcome per method, with how each method's rounds ended (tmc and gtg
are exact where the scenario's budget covers 2^n). Prints markdown tables and writes JSON
(benchmarks/contribution.json; one ``--part`` replaces its key in an existing file).
``incentives`` runs scenarios/contribution/incentives.toml under each incentive scheme and
reports accuracy, time to 80%, who took part, what was paid and how GTG's rounds ended.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from environment import environment  # noqa: E402  (what the figures ran with: benchmarks/environment.py)
from raysim.api import run  # noqa: E402
from raysim.results import load  # noqa: E402
from raysim.results.report import time_to_target  # noqa: E402
from raysim.scenario.sections import load_scenario  # noqa: E402

SCENARIOS = {"fmnist, 10 of 10 clients": ROOT / "scenarios/contribution/fmnist_free_riders.toml",
             "synthetic, 8 of 30 clients": ROOT / "scenarios/contribution/synthetic_methods.toml"}
METHODS = ("exact", "loo", "tmc", "gtg")


def spearman(a, b) -> float:
    """Spearman's rank correlation (Pearson's over average ranks)."""
    return float(pd.Series(np.asarray(a, dtype=float)).corr(pd.Series(np.asarray(b, dtype=float)), method="spearman"))


def valued(path: Path, method: str, root: Path, *extra: str) -> pd.DataFrame:
    """The contributions table of one run of ``path`` valuing with ``method`` alone."""
    scenario = load_scenario(path, (f'contribution.methods=["{method}"]', *extra))
    outcome = run(scenario, results_root=root)
    results = load(outcome.run_dir)
    frame = results.contributions.merge(results.rounds[["round", "round_wall_s"]], on="round")
    frame.attrs["max_evaluations"] = scenario.contribution.max_evaluations
    return frame


def below_exact(path: Path) -> int:
    """A budget just below 2^k, k the scenario's cohort: tmc and gtg estimate rather than compute
    the exact value (which they do when the budget covers all 2^n coalitions of a round)."""
    return 2 ** load_scenario(path).selection.clients_per_round - 1


def against_exact(frames: dict[str, pd.DataFrame]) -> list[dict]:
    """Per method, its errors against exact on the rounds it estimated (tmc and gtg: the rounds
    they did not compute exactly; exact and loo: every round)."""
    exact = frames["exact"].set_index(["round", "client_id"]).value
    rows = []
    for method, frame in frames.items():
        values = frame.set_index(["round", "client_id"]).value.loc[exact.index]
        ended = frame.groupby("round").stopped.first()
        estimated = [r for r in ended.index if method not in ("tmc", "gtg") or ended[r] != "exact"]
        rhos, efficiency, worst = [], [], []
        for round_number, want in exact.groupby(level="round"):
            if round_number not in estimated:
                continue
            got = values.loc[want.index]
            if got.nunique() > 1 and want.nunique() > 1:
                rhos.append(spearman(got, want))
            efficiency.append(abs(got.sum() - want.sum()))
            worst.append(float((got - want).abs().max()))
        per_round = frame.groupby("round").first().loc[estimated]
        rows.append({"method": method, "spearman": float(np.mean(rhos)) if rhos else float("nan"),
                     "rounds_ranked": len(rhos), "rounds_estimated": len(estimated), "rounds": len(ended),
                     "max_evaluations": int(frame.attrs.get("max_evaluations", 0)),
                     "efficiency_error": float(np.mean(efficiency)) if efficiency else float("nan"),
                     "max_abs_error": float(np.mean(worst)) if worst else float("nan"),
                     "utility_calls": float(per_round.utility_calls.mean()),
                     "seconds": float(per_round.seconds.mean()),
                     "stopped": ", ".join(f"{k} {v}" for k, v in ended.value_counts().items())})
    return rows


def accuracy(root: Path) -> dict:
    tables = {}
    for name, path in SCENARIOS.items():
        budget = f"contribution.max_evaluations={below_exact(path)}"
        tables[name] = against_exact({m: valued(path, m, root, *((budget,) if m in ("tmc", "gtg") else ()))
                                      for m in METHODS})
        print(f"\n### {name}\n\n| method | budget | Spearman vs exact | efficiency-sum error | max abs error | "
              "utility calls / round | seconds / round | rounds ended |\n|---|---:|---:|---:|---:|---:|---:|---|")
        for r in tables[name]:
            print(f"| {r['method']} | {r['max_evaluations']} | {r['spearman']:.3f} ({r['rounds_ranked']} ranked, "
                  f"{r['rounds_estimated']} of {r['rounds']} estimated) | {r['efficiency_error']:.4f} | "
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


def plant_budget(path: Path) -> int:
    return load_scenario(path).contribution.max_evaluations


def planted(root: Path) -> list[dict]:
    """Per planted scenario and method, the statistic its expected outcome is about."""
    folder = ROOT / "scenarios/contribution"
    rows = []
    for name in ("fmnist_free_riders", "label_noise", "duplicates", "size_ladder"):
        results = load(run(load_scenario(folder / f"{name}.toml"), results_root=root).run_dir)
        totals = results.contributions.groupby(["method", "client_id"]).value.sum()
        sizes = results.partition.groupby("client_id")["count"].sum()
        riders = sorted(set(results.clients[results.clients.attacker].client_id))
        plant = load_scenario(folder / f"{name}.toml").contribution.plant
        for method, values in totals.groupby(level="method"):
            values = values.droplevel("method")
            if name == "fmnist_free_riders":
                ranks = values.rank(ascending=False, method="min")
                measured = f"free-riders {riders} ranked {sorted(int(ranks[c]) for c in riders)} of {len(values)}"
            elif name == "label_noise":
                measured = f"Spearman(noise, value) = {spearman(list(plant.label_noise), values.loc[range(10)]):.3f}"
            elif name == "duplicates":
                scale = values.abs().mean()
                gaps = [f"|phi{c} - phi{o}| = {abs(values[c] - values[o]):.4f}" for c, o in plant.duplicates]
                measured = "; ".join(gaps) + f" (mean |phi| = {scale:.4f})"
            else:
                measured = f"Spearman(size, value) = {spearman(sizes.loc[values.index], values):.3f}"
            ended = results.contributions[results.contributions.method == method].groupby("round").stopped
            ended = ended.agg(lambda s: s[s != "absent"].iloc[0] if (s != "absent").any() else "absent")
            rows.append({"scenario": name, "method": method, "measured": measured,
                         "stopped": ", ".join(f"{k} {v}" for k, v in ended.value_counts().items()),
                         "max_evaluations": plant_budget(folder / f"{name}.toml")})
    print("\n| scenario | method | measured | rounds ended |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['scenario']} | {r['method']} | {r['measured']} | {r['stopped']} |", flush=True)
    return rows


def incentives(root: Path) -> list[dict]:
    rows = []
    for scheme in ("off", "equal", "proportional", "reputation"):
        scenario = load_scenario(ROOT / "scenarios/contribution/incentives.toml", (f'incentive.scheme="{scheme}"',))
        results = load(run(scenario, results_root=root).run_dir)
        rounds, clients = results.rounds, results.clients
        applied = clients[clients.status == "applied"]
        riders = applied.client_id.isin(set(clients[clients.attacker].client_id))
        paid = results.incentives.reward.sum() if len(results.incentives) else 0.0
        rider_ids = set(clients[clients.attacker].client_id)
        values = results.contributions[results.contributions.valued]
        is_rider = values.client_id.isin(rider_ids)
        taken = results.incentives[results.incentives.participated] if len(results.incentives) else None
        rows.append({"scheme": scheme, "final_accuracy": float(rounds.test_accuracy.iloc[-1]),
                     "best_accuracy": float(rounds.test_accuracy.max()),
                     "sim_s_to_0.8": time_to_target(rounds, 0.8), "rounds_to_0.8": time_to_target(rounds, 0.8, x="round"),
                     "clients_per_round": float(rounds.clients.mean()), "free_rider_updates": int(riders.sum()),
                     "free_rider_updates_after_round_10": int((riders & (applied["round"] > 10)).sum()),
                     "paid": float(paid), "sim_s": float(rounds.sim_time.iloc[-1]),
                     # who the valuation favours: the share of valued updates worth > 0, the mean
                     # value, and the mean reward per update taken part in, free-riders and honest
                     "free_rider_positive_share": float((values.value[is_rider] > 0).mean()),
                     "honest_positive_share": float((values.value[~is_rider] > 0).mean()),
                     "free_rider_mean_value": float(values.value[is_rider].mean()),
                     "honest_mean_value": float(values.value[~is_rider].mean()),
                     "free_rider_reward_per_update": float(taken.reward[taken.client_id.isin(rider_ids)].mean())
                     if taken is not None else float("nan"),
                     "honest_reward_per_update": float(taken.reward[~taken.client_id.isin(rider_ids)].mean())
                     if taken is not None else float("nan"),
                     "stopped": ", ".join(f"{k} {v}" for k, v in
                                          results.contributions.groupby("round").stopped.first()
                                          .value_counts().items())})
    print("\n| scheme | final acc | best acc | sim s to 80% | rounds to 80% | clients / round | free-rider updates "
          "(after round 10) | paid | sim s, 20 rounds | rounds ended |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['scheme']} | {r['final_accuracy']:.4f} | {r['best_accuracy']:.4f} | {r['sim_s_to_0.8']:.1f} | "
              f"{r['rounds_to_0.8']:.1f} | {r['clients_per_round']:.1f} | {r['free_rider_updates']} "
              f"({r['free_rider_updates_after_round_10']}) | {r['paid']:.2f} | {r['sim_s']:.1f} | {r['stopped']} |",
              flush=True)
    print("\n| scheme | valued > 0: free-riders / honest | mean value: free-riders / honest | reward per update: "
          "free-riders / honest |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['scheme']} | {r['free_rider_positive_share']:.2f} / {r['honest_positive_share']:.2f} | "
              f"{r['free_rider_mean_value']:.4f} / {r['honest_mean_value']:.4f} | "
              f"{r['free_rider_reward_per_update']:.3f} / {r['honest_reward_per_update']:.3f} |", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["accuracy", "cost", "planted", "incentives", "all"], default="all")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/contribution.json")
    args = parser.parse_args()
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    # a single part replaces that part's key in an existing file and keeps the others
    out = json.loads(args.json.read_text()) if args.part != "all" and args.json.exists() else {}
    out["machine"] = machine
    out["environment"] = environment()  # of this run: a part kept from an earlier one may differ
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("accuracy", "all"):
            out["accuracy"] = accuracy(Path(tmp))
        if args.part in ("cost", "all"):
            out["gtg_cost"] = cost(Path(tmp))
        if args.part in ("planted", "all"):
            out["planted"] = planted(Path(tmp))
        if args.part in ("incentives", "all"):
            out["incentives"] = incentives(Path(tmp))
    args.json.write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
