"""The Flower quickstart app on raysim against raysim's native FedAvg on the same nodes' data.

    python benchmarks/flower_twin.py [--seeds 0 1 2] [--nodes 4] [--rounds 6] [--train-examples 4000]

The Flower app is tests/flower_apps/message_app.py (Flower 1.42's PyTorch quickstart on
Fashion-MNIST), every node training and evaluating each round on homogeneous devices; the twin
is tests/flower/native_twin.py (the same nodes' examples, the union of their validation parts as
the test set, the same CNN, SGD with momentum 0.9, batch 32, lr 0.05, FedAvg). Prints each round's
accuracy for both (Flower's: the evaluate replies' accuracy weighted by examples; the twin's:
test accuracy on the same union) per seed and their mean over seeds, and writes flower_twin.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from environment import environment  # noqa: E402  (what the figures ran with: benchmarks/environment.py)
from raysim.api import run  # noqa: E402
from raysim.scenario.sections import parse_scenario  # noqa: E402
from tests.flower.native_twin import native_table  # noqa: E402
from tests.flower.test_flower_runs import scenario  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--train-examples", type=int, default=4000)
    args = parser.parse_args()
    curves = {"flower": [], "native": []}
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            flower = scenario(run_config={"num-server-rounds": args.rounds, "train-examples": args.train_examples,
                                          "fraction-train": 1.0}, flower={"num_nodes": args.nodes})
            flower = dataclasses.replace(flower, run=dataclasses.replace(flower.run, seed=seed))
            outcome = run(flower, results_root=Path(folder) / f"flower{seed}")
            curves["flower"].append(pd.read_parquet(outcome.run_dir / "rounds.parquet")["test_eval_acc"].tolist())
            table = native_table(nodes=args.nodes, train_examples=args.train_examples, rounds=args.rounds,
                                 fraction=1.0, lr=0.05, seed=seed)
            outcome = run(parse_scenario(table), results_root=Path(folder) / f"native{seed}")
            curves["native"].append(pd.read_parquet(outcome.run_dir / "rounds.parquet")["test_accuracy"].tolist())
    rows = [{"round": r + 1, **{f"{side} seed {s}": curves[side][i][r] for side in curves for i, s in enumerate(args.seeds)},
             "flower mean": float(np.mean([c[r] for c in curves["flower"]])),
             "native mean": float(np.mean([c[r] for c in curves["native"]]))} for r in range(args.rounds)]
    frame = pd.DataFrame(rows)
    frame["gap of means"] = frame["flower mean"] - frame["native mean"]
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = Path(__file__).resolve().parent / "flower_twin.json"
    out.write_text(json.dumps({"args": vars(args), "environment": environment(), "rows": frame.to_dict("records")},
                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
