"""FedAvg, FedProx and local-only models on the smart-city sites, by each site's MSE.

    PYTHONPATH=examples/smart_city python -m smart_city.compare [--rounds 30] [--out compare.json]

Runs ``smart_city.toml`` four times through ``raysim.api.run`` (FedAvg as written; FedProx with
``client.proximal_mu``; ``site_bias``: FedAvg of the weights with each site's own bias, FedPer's
personal layer (``personal.local_layers = ["1.bias"]``); local-only with every layer local, so
each site trains its own model and nothing is federated) and prints, per method, the sites' MSE
on their own held-out readings at the last round: mean over sites, sample-weighted mean, worst
site, and how many sites it serves best. FedAvg and FedProx are scored by the global model; the
other two by each site's own model (global weights and own bias, or wholly its own).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from raysim.api import run
from raysim.scenario.sections import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "smart_city.toml"
METHODS = {"fedavg": (), "fedprox": ("client.proximal_mu=0.1",), "site_bias": ('personal.local_layers=["1.bias"]',),
           "local_only": ('personal.local_layers=["1."]',)}


def site_mse(overrides: tuple[str, ...], *, rounds: int, results: Path, executor: str) -> pd.Series:
    """Each site's MSE on its held-out readings at the last round (the global model, or with
    every layer local, the site's own)."""
    scenario = load_scenario(SCENARIO, (*overrides, f"run.rounds={rounds}", f"run.executor={executor}"))
    outcome = run(scenario, results_root=results)
    evaluation = pd.read_parquet(outcome.run_dir / "evaluation.parquet")
    last = evaluation[evaluation["round"] == evaluation["round"].max()].set_index("client_id")
    column = "personal_mse" if any("local_layers" in o for o in overrides) else "global_mse"
    return last[column].rename("mse").to_frame().assign(samples=last["samples"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--executor", choices=("ray", "local"), default="ray")
    parser.add_argument("--out", type=Path, default=None, help="write the table as JSON")
    args = parser.parse_args(argv)
    per_site = {name: site_mse(overrides, rounds=args.rounds, results=args.results, executor=args.executor)
                for name, overrides in METHODS.items()}
    best = pd.DataFrame({name: frame["mse"] for name, frame in per_site.items()}).idxmin(axis=1).value_counts()
    rows = [{"method": name, "mean_site_mse": round(float(f["mse"].mean()), 4),
             "weighted_site_mse": round(float((f["mse"] * f["samples"]).sum() / f["samples"].sum()), 4),
             "worst_site_mse": round(float(f["mse"].max()), 4), "sites_best": int(best.get(name, 0))}
            for name, f in per_site.items()]
    print(pd.DataFrame(rows).to_string(index=False))
    if args.out is not None:
        args.out.write_text(json.dumps({"rounds": args.rounds, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
