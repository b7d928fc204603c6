"""Runs the paper reproductions under scenarios/papers/ and prints a table of measured outcomes.

    python benchmarks/reproductions.py [--only GROUP] [--results results/reproductions]

Each experiment is a scenario file plus ``--set`` overrides. Ray is started once (2 CPUs by
default) and shared by all runs. The table (markdown) is printed and written with the raw
numbers to benchmarks/reproductions.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from environment import environment  # noqa: E402  (what the figures ran with: benchmarks/environment.py)
from raysim.api import run  # noqa: E402
from raysim.results.report import time_to_target  # noqa: E402
from raysim.scenario.sections import load_scenario  # noqa: E402


@dataclass(frozen=True)
class Experiment:
    group: str
    label: str
    scenario: str
    overrides: tuple[str, ...] = ()


def _fedprox(scenario: str, group: str) -> list[Experiment]:
    out = []
    for stragglers in (0.0, 0.5, 0.9):
        share = f"client.straggler_fraction={stragglers}"
        out.append(Experiment(group, f"FedAvg, {stragglers:.0%} stragglers", scenario, (share,)))
        out.append(Experiment(group, f"FedProx mu=1, {stragglers:.0%} stragglers", scenario,
                              (share, "client.proximal_mu=1.0", "server.drop_stragglers=false")))
    return out


EXPERIMENTS = [
    Experiment("fmnist_iid_vs_shards", "FedAvg, IID", "scenarios/papers/fmnist_shards.toml", ("data.partition.kind=iid",)),
    Experiment("fmnist_iid_vs_shards", "FedAvg, 2 shards per client", "scenarios/papers/fmnist_shards.toml"),
    Experiment("fmnist_dirichlet", "FedAvg", "scenarios/papers/fmnist_dirichlet_algorithms.toml"),
    Experiment("fmnist_dirichlet", "FedProx mu=0.01", "scenarios/papers/fmnist_dirichlet_algorithms.toml",
               ("client.proximal_mu=0.01",)),
    Experiment("fmnist_dirichlet", "SCAFFOLD", "scenarios/papers/fmnist_dirichlet_algorithms.toml",
               ("server.strategy=scaffold", "server.weighting=uniform")),
    Experiment("fmnist_dirichlet", "FedNova", "scenarios/papers/fmnist_dirichlet_algorithms.toml",
               ("server.strategy=fednova",)),
    Experiment("fmnist_robust", "FedAvg, no attack", "scenarios/papers/fmnist_robust.toml",
               ("attack.kind=none", "attack.fraction=0")),
    Experiment("fmnist_robust", "FedAvg, 20% sign flip", "scenarios/papers/fmnist_robust.toml"),
    Experiment("fmnist_robust", "median", "scenarios/papers/fmnist_robust.toml", ("server.aggregator=median",)),
    Experiment("fmnist_robust", "trimmed mean (4)", "scenarios/papers/fmnist_robust.toml",
               ("server.aggregator=trimmed_mean",)),
    Experiment("fmnist_robust", "Krum (f=4)", "scenarios/papers/fmnist_robust.toml", ("server.aggregator=krum",)),
    Experiment("privacy", "FedAvg, no DP", "scenarios/privacy/dp_fedavg.toml", ("privacy.dp=none",)),
    *(Experiment("privacy", f"DP-FedAvg, z={z}", "scenarios/privacy/dp_fedavg.toml", (f"privacy.noise_multiplier={z}",))
      for z in (0.5, 1.0, 2.0)),
    Experiment("privacy", "plaintext sum, 10% dropout", "scenarios/privacy/secagg.toml",
               ("privacy.secure_aggregation=none",)),
    Experiment("privacy", "SecAgg, 10% dropout", "scenarios/privacy/secagg.toml"),
    Experiment("privacy", "SecAgg+, 10% dropout", "scenarios/privacy/secagg.toml", ("privacy.secure_aggregation=secagg+",)),
    Experiment("privacy", "plaintext FedAvg", "scenarios/privacy/he.toml", ("privacy.homomorphic=none",)),
    Experiment("privacy", "CKKS aggregation", "scenarios/privacy/he.toml"),
    *_fedprox("scenarios/papers/fedprox_synthetic.toml", "fedprox_synthetic"),
    *_fedprox("scenarios/papers/fedprox_synthetic_iid.toml", "fedprox_synthetic_iid"),
]
COST_COLUMNS = ("epsilon", "secagg_bytes_up_per_client", "secagg_wall_s", "secagg_extra_sim_s", "he_bytes_per_client",
                "he_wall_s")
TARGETS = {"fmnist_iid_vs_shards": 0.75, "fedprox_synthetic": 0.7, "fedprox_synthetic_iid": 0.9}


def _reached(rounds: float) -> float | None:
    """Rounds to the target, None when it was never reached (JSON has no NaN)."""
    return None if math.isnan(rounds) else round(rounds, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run one group", choices=sorted({e.group for e in EXPERIMENTS}))
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "reproductions")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count())
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "reproductions.json")
    args = parser.parse_args()

    import ray

    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    rows = []
    try:
        for exp in (e for e in EXPERIMENTS if args.only in (None, e.group)):
            scenario = load_scenario(ROOT / exp.scenario, exp.overrides)
            started = time.perf_counter()
            outcome = run(scenario, results_root=args.results / exp.group)
            rounds = pd.read_parquet(outcome.run_dir / "rounds.parquet")
            accuracy = rounds["test_accuracy"].dropna()
            target = TARGETS.get(exp.group)
            rows.append({
                "group": exp.group, "label": exp.label, "overrides": list(exp.overrides),
                "final_accuracy": round(float(accuracy.iloc[-1]), 4),
                "best_accuracy": round(float(accuracy.max()), 4),
                "target": target,
                "rounds_to_target": _reached(time_to_target(rounds, target, x="round")) if target else None,
                "rounds": int(rounds["round"].max()),
                **{column: round(float(rounds[column].iloc[-1] if column == "epsilon" else rounds[column].mean()), 4)
                   for column in COST_COLUMNS if column in rounds},
                "wall_s": round(time.perf_counter() - started, 1),
                "run_dir": str(outcome.run_dir.relative_to(ROOT) if outcome.run_dir.is_relative_to(ROOT) else outcome.run_dir),
            })
            print(f"{exp.group:24s} {exp.label:34s} final {rows[-1]['final_accuracy']:.4f} "
                  f"best {rows[-1]['best_accuracy']:.4f} rounds-to-target {rows[-1]['rounds_to_target']} "
                  f"({rows[-1]['wall_s']} s)", flush=True)
    finally:
        ray.shutdown()
    table = pd.DataFrame(rows)
    print(table.drop(columns=["overrides", "run_dir"]).to_string(index=False))
    previous = json.loads(args.json.read_text()) if args.json.exists() and args.only else {"rows": []}
    # a file written before the environment was recorded is a bare list of rows
    kept = [r for r in (previous if isinstance(previous, list) else previous["rows"]) if r["group"] != args.only]
    args.json.write_text(json.dumps({"environment": environment(), "rows": kept + rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
