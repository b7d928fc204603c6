"""Topologies and protocols compared on Fashion-MNIST (scenarios/network/fmnist_2nn.toml).

    python benchmarks/network.py                      # every topology, the scenario's 20 rounds
    python benchmarks/network.py --rounds 5 --only star,ring

Runs the scenario once per topology (in-process executor: the simulated figures are the same on
Ray, only wall time differs) and prints a markdown table: final accuracy, simulated time to the
target accuracy and for the whole run, megabytes per client node (what each client sent and
received, payload bytes, as clients.parquet counts them), megabytes through the busiest
infrastructure node (server, broker, edge; for the star the server's
link, which carries every client's traffic), and messages (transport messages: MQTT packets for
the broker; one per model sent otherwise). Writes it as JSON (benchmarks/network.json) with every
round's accuracy and simulated time (gossip: consensus distance and contraction rate; PoW
ledger: each round's block time, orphaned blocks and fork seconds). Every figure is simulated,
hence the same on any machine.
"""

from __future__ import annotations

import argparse
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
from raysim.scenario.sections import load_scenario  # noqa: E402

SCENARIO = ROOT / "scenarios" / "network" / "fmnist_2nn.toml"
TOPOLOGIES = {  # label -> [network] overrides
    "star": {},
    "broker (50 Mbit/s, QoS 1)": {"topology": "broker", "broker_mbps": 50.0},
    "gossip ring": {"topology": "gossip", "graph": "ring", "eval_nodes": 4},
    "gossip exponential": {"topology": "gossip", "graph": "exponential", "eval_nodes": 4},
    "hierarchical (4 edges, kappa_2 = 2)": {"topology": "hierarchical", "num_edges": 4, "edge_rounds": 2},
    "ledger (PoW, 10 s blocks)": {"topology": "ledger"},
}
SHORT = {"star": "star", "broker": "broker", "ring": "gossip ring", "exponential": "gossip exponential",
         "hierarchical": "hierarchical (4 edges, kappa_2 = 2)", "ledger": "ledger (PoW, 10 s blocks)"}


def run_topology(label: str, rounds: int | None, root: Path) -> dict:
    overrides = [f"network.{k}={json.dumps(v)}" for k, v in TOPOLOGIES[label].items()]
    if rounds:
        overrides.append(f"run.rounds={rounds}")
    outcome = run(load_scenario(SCENARIO, tuple(overrides)), results_root=root)
    rounds_frame = pd.read_parquet(outcome.run_dir / "rounds.parquet")
    clients = pd.read_parquet(outcome.run_dir / "clients.parquet")
    per_node = clients.groupby("client_id")[["bytes_up", "bytes_down"]].sum().sum(axis=1)
    network = outcome.run_dir / "network.parquet"
    if network.exists():
        nodes = pd.read_parquet(network)
        infrastructure = nodes[nodes["role"] != "client"]
        busiest = float((infrastructure["bytes_in"] + infrastructure["bytes_out"]).max()) if len(infrastructure) else 0.0
        messages = int(nodes["messages_out"].sum())
    else:  # the star: the server's link carries every download and upload
        busiest = float(per_node.sum())
        messages = 2 * len(clients)
    return {
        "label": label, "network": TOPOLOGIES[label],
        "accuracy": rounds_frame["test_accuracy"].tolist(), "sim_time": rounds_frame["sim_time"].tolist(),
        "mb_per_client": float(per_node.mean() / 1e6), "mb_busiest_node": busiest / 1e6, "messages": messages,
        **({"consensus_distance": rounds_frame["consensus_distance"].tolist(),
            "contraction_rate": float(rounds_frame["contraction_rate"].iloc[0])}
           if "consensus_distance" in rounds_frame else {}),
        **({column: rounds_frame[column].tolist() for column in ("block_s", "orphaned", "fork_s")}
           if "block_s" in rounds_frame else {}),
    }


def time_to(result: dict, target: float) -> float:
    hits = [t for a, t in zip(result["accuracy"], result["sim_time"]) if a >= target]
    return hits[0] if hits else float("nan")


def table(results: list[dict], target: float) -> str:
    lines = [f"| topology | final accuracy | sim. time to {target:.2f} (s) | sim. time, whole run (s) | "
             "MB per client | MB through the busiest server/broker/edge | messages |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        reached = time_to(r, target)
        lines.append(f"| {r['label']} | {r['accuracy'][-1]:.4f} | {'not reached' if np.isnan(reached) else f'{reached:.1f}'} | "
                     f"{r['sim_time'][-1]:.1f} | {r['mb_per_client']:.1f} | {r['mb_busiest_node']:.1f} | {r['messages']:,} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="override run.rounds")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {list(SHORT)}")
    parser.add_argument("--target", type=float, default=0.80, help="accuracy for the time-to-target column")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "network.json")
    args = parser.parse_args()
    labels = [SHORT[s] for s in args.only.split(",")] if args.only else list(TOPOLOGIES)
    with tempfile.TemporaryDirectory() as root:
        results = [run_topology(label, args.rounds, Path(root)) for label in labels]
    args.out.write_text(json.dumps({"target": args.target, "environment": environment(), "results": results}, indent=1))
    print(table(results, args.target))


if __name__ == "__main__":
    main()
