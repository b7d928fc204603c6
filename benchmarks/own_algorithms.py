"""The three user packages of ``examples/`` (FedDyn, MOON, Ditto) against raysim's FedAvg, FedProx
and SCAFFOLD: Fashion-MNIST, 100 clients, Dirichlet(beta) label skew for beta 0.1 and 0.5, the
FedAvg CNN, 10 clients a round, 1 epoch of batch 50 at lr 0.05, the same seed for every run.

Each run is ``raysim run`` of the example's own scenario file (the built-ins run FedAvg's file
with ``--set``), with the package on ``PYTHONPATH`` as a user runs it. The table gives the final
and best test accuracy of the global model, the first round at or above ``--target``, and for
Ditto the mean personalised and global accuracy of the clients' held-out 20% over the last
``--last`` rounds' participants (``metric_personal_accuracy``, ``metric_global_accuracy``).

    python benchmarks/own_algorithms.py [--rounds 50] [--betas 0.1 0.5] [--target 0.7]

Writes benchmarks/own_algorithms.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FEDAVG = EXAMPLES / "feddyn" / "fmnist_feddyn.toml"  # the shared setup; its [client]/[server] user keys are reset
RUNS = {
    "FedAvg": (FEDAVG, ["client.algorithm=''", "client.algorithm_options={}", "server.strategy=fedavg",
                        "server.strategy_options={}"]),
    "FedProx (mu 0.01)": (FEDAVG, ["client.algorithm=''", "client.algorithm_options={}", "server.strategy=fedavg",
                                   "server.strategy_options={}", "client.proximal_mu=0.01"]),
    "SCAFFOLD": (FEDAVG, ["client.algorithm=''", "client.algorithm_options={}", "server.strategy=scaffold",
                          "server.strategy_options={}", "server.weighting=uniform"]),
    "FedDyn (alpha 0.01)": (EXAMPLES / "feddyn" / "fmnist_feddyn.toml", []),
    "MOON (mu 1, tau 0.5)": (EXAMPLES / "moon" / "fmnist_moon.toml", []),
    "Ditto (lambda 0.1)": (EXAMPLES / "ditto" / "fmnist_ditto.toml", []),
}


def run_one(scenario: Path, sets: list[str], beta: float, rounds: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    results = Path(tempfile.mkdtemp(prefix="raysim-own-"))
    sets = [*sets, f"run.rounds={rounds}", f"data.partition={{kind='dirichlet',beta={beta}}}", "ray.num_cpus=2"]
    command = [sys.executable, "-m", "raysim", "run", str(scenario), "--results", str(results), "--quiet"]
    for assignment in sets:
        command += ["--set", assignment]
    env = {**os.environ, "PYTHONPATH": str(scenario.parent)}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{scenario.name} {sets}: exit {done.returncode}\n{done.stderr[-3000:]}")
    (run_dir,) = results.glob("*/*")
    return (pd.read_parquet(run_dir / "rounds.parquet"), pd.read_parquet(run_dir / "clients.parquet"),
            time.perf_counter() - started)


def summarise(name: str, beta: float, rounds: pd.DataFrame, clients: pd.DataFrame, *, target: float,
              last: int, wall: float) -> dict:
    scored = rounds.dropna(subset=["test_accuracy"])
    reached = scored[scored.test_accuracy >= target]
    row = {"algorithm": name, "beta": beta, "final_accuracy": round(float(scored.test_accuracy.iloc[-1]), 4),
           "best_accuracy": round(float(scored.test_accuracy.max()), 4),
           "rounds_to_target": int(reached["round"].iloc[0]) if len(reached) else None, "wall_s": round(wall)}
    if "metric_personal_accuracy" in clients.columns:
        recent = clients[(clients.status == "applied") & (clients["round"] > rounds["round"].max() - last)]
        row["personal_accuracy"] = round(float(recent.metric_personal_accuracy.mean()), 4)
        row["local_global_accuracy"] = round(float(recent.metric_global_accuracy.mean()), 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.5])
    parser.add_argument("--target", type=float, default=0.7)
    parser.add_argument("--last", type=int, default=10, help="rounds whose Ditto participants are averaged")
    parser.add_argument("--only", action="append", help="run only these algorithms (names as in the table)")
    args = parser.parse_args()
    rows = []
    for beta in args.betas:
        for name, (scenario, sets) in RUNS.items():
            if args.only and not any(name.startswith(o) for o in args.only):
                continue
            rounds, clients, wall = run_one(scenario, sets, beta, args.rounds)
            rows.append(summarise(name, beta, rounds, clients, target=args.target, last=args.last, wall=wall))
            print(json.dumps(rows[-1]), flush=True)
    machine = f"{platform.node()} {psutil.cpu_count()} cores {psutil.virtual_memory().total / 2**30:.0f} GB"
    print(f"\n{machine}; {args.rounds} rounds, target {args.target}")
    print(f"{'beta':>5} {'algorithm':22} {'final':>7} {'best':>7} {'to target':>10} {'personal':>9} {'global (local)':>15}")
    for r in rows:
        print(f"{r['beta']:>5} {r['algorithm']:22} {r['final_accuracy']:>7.4f} {r['best_accuracy']:>7.4f} "
              f"{str(r['rounds_to_target']):>10} {r.get('personal_accuracy', ''):>9} {r.get('local_global_accuracy', ''):>15}")
    out = Path(__file__).with_name("own_algorithms.json")
    out.write_text(json.dumps({"machine": machine, "rounds": args.rounds, "target": args.target, "rows": rows},
                              indent=2) + "\n")


if __name__ == "__main__":
    main()
