"""A 100,000-client table against the sampled 100,000-client population (issue "Your own data").

    python benchmarks/own_data.py [--clients 100000] [--rows-per-client 6] [--rounds 3] [--repeats 3]

Writes a Parquet table of ``clients`` x ``rows-per-client`` rows (a string client id, 60 float32
features and an integer class among 10, drawn from a seeded generator) and runs, alternating in
one process:

- ``table``: that table with ``partition = "natural"`` (one client per id), logreg, 1,000 clients
  a round, batch 6, 1 epoch;
- ``sampled``: W3's population of benchmarks/run.py, Fashion-MNIST with the ``sampled``
  partition (6 examples per client) at the same population, cohort and model.

Each repeat reports the time to read and group the table alone (``load_s``), the run's start-up
(``startup_s``: preparing the data, Ray, the actors), the median round (``round_wall_s`` of
rounds.parquet) and the peak memory over the baseline (PSS of every process). Prints a table
and writes ``own_data.json`` next to this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import environment  # noqa: E402  (what the figures ran with)
from run import PeakMemory  # noqa: E402  (the same memory sampler as the main benchmark)

from raysim.api import run  # noqa: E402
from raysim.data.datasets import forget_loaded  # noqa: E402
from raysim.data.table import TableSpec, load_table  # noqa: E402
from raysim.scenario.sections import parse_scenario  # noqa: E402

FEATURES = 60


def write_table(path: Path, *, clients: int, rows_per_client: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n = clients * rows_per_client
    weights = rng.normal(size=(FEATURES, 10))
    x = rng.normal(size=(n, FEATURES)).astype(np.float32)
    y = (x @ weights + rng.normal(scale=2.0, size=(n, 10))).argmax(axis=1)
    ids = pa.array(np.char.add("client-", np.repeat(np.arange(clients), rows_per_client).astype(str)))
    columns = {"client": ids, "label": pa.array(y), **{f"f{j}": pa.array(x[:, j]) for j in range(FEATURES)}}
    pq.write_table(pa.table(columns), path)


def scenario(kind: str, *, clients: int, rounds: int, table: Path):
    data = ({"dataset": "table", "path": str(table), "label": "label", "client": "client", "partition": "natural",
             "test_share": 0.01} if kind == "table"
            else {"dataset": "fashion_mnist", "partition": {"kind": "sampled", "size": 6}})
    return parse_scenario({
        "run": {"name": f"own_data_{kind}", "seed": 0, "rounds": rounds, "eval_every": rounds, "checkpoint_every": 0},
        "data": {"num_clients": clients, **data}, "model": {"name": "logreg"},
        "client": {"epochs": 1, "batch_size": 6, "lr": 0.05}, "selection": {"clients_per_round": 1000},
        "resources": {"num_cpus": 1},
    })


def measure(kind: str, *, clients: int, rounds: int, table: Path) -> dict:
    forget_loaded()
    started = time.perf_counter()
    if kind == "table":
        load_table(TableSpec(path=str(table), label="label", client="client", test_share=0.01), seed=0)
    load_s = time.perf_counter() - started if kind == "table" else float("nan")
    with tempfile.TemporaryDirectory() as results, PeakMemory() as memory:
        outcome = run(scenario(kind, clients=clients, rounds=rounds, table=table), results_root=results)
        rounds_frame = pd.read_parquet(outcome.run_dir / "rounds.parquet")
    return {"kind": kind, "load_s": load_s, "startup_s": outcome.summary["startup_s"],
            "round_median_s": float(rounds_frame["round_wall_s"].median()), "peak_memory_mb": memory.peak_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--rows-per-client", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    repeats: dict[str, list[dict]] = {"table": [], "sampled": []}
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "clients.parquet"
        write_table(table, clients=args.clients, rows_per_client=args.rows_per_client)
        size_mb = table.stat().st_size / 2**20
        for _ in range(args.repeats):
            for kind in repeats:  # alternating, so drift on the machine hits both alike
                repeats[kind].append(measure(kind, clients=args.clients, rounds=args.rounds, table=table))
    rows = [{"kind": kind, **{key: float(np.median([r[key] for r in runs])) for key in runs[0] if key != "kind"}}
            for kind, runs in repeats.items()]
    print(f"{args.clients:,} clients, {args.rows_per_client} rows each ({size_mb:.0f} MB Parquet), logreg, "
          f"1,000 clients a round, {args.rounds} rounds, medians of {args.repeats}")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = Path(__file__).resolve().parent / "own_data.json"
    out.write_text(json.dumps({"args": vars(args), "environment": environment(), "table_mb": size_mb, "rows": rows,
                               "repeats": repeats}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
