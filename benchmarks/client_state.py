"""Per-client state at scale: SCAFFOLD and FedDyn with 1,000 Fashion-MNIST clients of the FedAvg
CNN, 100 per round, 50 rounds, under the per-client store's memory budget.

SCAFFOLD keeps a control variate c_i per client and FedDyn (``examples/feddyn``) its gradient
state g_i, each 1,663,370 float32 values (6.7 MB; SCAFFOLD's were float64, 13.3 MB, before issue
36): 6.7 GB each over 1,000 clients.
Before the store, SCAFFOLD's controls lived in the driver and the run was killed by Ray's memory
monitor at round 6 on a 24 GB machine. Here the store keeps ``resources.client_state_mb`` in
memory and spills the rest to the run folder; the table shows the process tree's peak memory
(PSS, sampled every 0.1 s), the median round wall time over the first and last five rounds, and
what the store holds on disk at the end.

    python benchmarks/client_state.py [--rounds 50] [--budget-mb 1024] [--only scaffold] [--vectorize on]

``--vectorize`` sets ``resources.vectorize`` for every run (default ``auto``, which trains the
FedAvg CNN, 1.66M parameters, client by client). ``on`` trains each actor's equal-sized clients
as one batch of models: FedAvg's and SCAFFOLD's built-in clients (``train_batch``) and FedDyn's,
written in the functional form (``raysim.models.functional``), so ``--only fedavg --only feddyn
--vectorize on`` compares FedDyn's round time with FedAvg's on the vectorised path.

Writes benchmarks/client_state.json (a row replaces the earlier one of its algorithm and
``vectorize``, others are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import environment  # noqa: E402  (what the figures ran with)
from footprint import sampled  # noqa: E402  (the same sampler as the footprint benchmark)

ROOT = Path(__file__).resolve().parents[1]
RUNS = {
    "fedavg": [],
    "scaffold": ["server.strategy=scaffold", "server.weighting=uniform"],
    # the population (1,000) reaches FedDyn's server from the run: init(params, run)
    "feddyn": ["algorithm.kind=feddyn:FedDyn", "algorithm.options={alpha=0.01}"],
}


def command(name: str, rounds: int, budget_mb: float, results: Path, vectorize: str = "auto") -> list[str]:
    sets = ["run.name=" + name, f"run.rounds={rounds}", "run.eval_every=1000", "data.num_clients=1000",
            "data.partition='iid'", "model.name='cnn'", "selection.clients_per_round=100",
            "client.batch_size=20", "client.lr=0.02", f"resources.client_state_mb={budget_mb}",
            f"resources.vectorize='{vectorize}'", "ray.num_cpus=2", *RUNS[name]]
    args = [sys.executable, "-m", "raysim", "run", str(ROOT / "scenarios/papers/fmnist_dirichlet_algorithms.toml"),
            "--results", str(results), "--quiet"]
    for assignment in sets:
        args += ["--set", assignment]
    return args


def measure(name: str, rounds: int, budget_mb: float, vectorize: str) -> dict:
    results = Path(tempfile.mkdtemp(prefix=f"raysim-bench-{name}-"))
    try:
        memory = sampled(command(name, rounds, budget_mb, results, vectorize))
        (run_dir,) = results.glob("*/*")
        walls = pd.read_parquet(run_dir / "rounds.parquet").round_wall_s.to_numpy()
        state = run_dir / "client_state"
        on_disk = sum(p.stat().st_size for p in state.glob("*.npz")) if state.exists() else 0
        accuracy = json.loads((run_dir / "summary.json").read_text())["final_accuracy"]
    finally:
        shutil.rmtree(results, ignore_errors=True)
    return {"algorithm": name, "vectorize": vectorize, "rounds": int(len(walls)),
            "peak_total_mb": round(memory["peak_total_mb"]),
            "first5_round_s": round(float(pd.Series(walls[:5]).median()), 2),
            "last5_round_s": round(float(pd.Series(walls[-5:]).median()), 2),
            "state_on_disk_mb": round(on_disk / 2**20), "final_accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--budget-mb", type=float, default=1024.0)
    parser.add_argument("--only", choices=sorted(RUNS), action="append")
    parser.add_argument("--vectorize", choices=["auto", "on", "off"], default="auto")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "examples" / "feddyn"), os.environ.get("PYTHONPATH")]))
    rows = [measure(name, args.rounds, args.budget_mb, args.vectorize) for name in (args.only or list(RUNS))]
    machine = f"{platform.node()} {psutil.cpu_count()} cores {psutil.virtual_memory().total / 2**30:.0f} GB"
    print(f"{machine}; budget {args.budget_mb:g} MB, {args.rounds} rounds")
    print(f"{'algorithm':10} {'vectorize':>9} {'peak MB':>8} {'rounds 1-5 s':>13} {'last 5 s':>9} {'on disk MB':>11} "
          f"{'accuracy':>9}")
    for r in rows:
        print(f"{r['algorithm']:10} {r['vectorize']:>9} {r['peak_total_mb']:>8} {r['first5_round_s']:>13} "
              f"{r['last5_round_s']:>9} "
              f"{r['state_on_disk_mb']:>11} {r['final_accuracy']:>9.4f}")
    out = Path(__file__).with_name("client_state.json")  # rows of other algorithms or settings are kept
    kept = json.loads(out.read_text())["rows"] if out.exists() else []
    measured = {_key(n) for n in rows}
    rows = [r for r in kept if _key(r) not in measured] + rows
    out.write_text(json.dumps({"machine": machine, "environment": environment(), "budget_mb": args.budget_mb,
                               "rows": rows}, indent=2) + "\n")


def _key(row: dict) -> tuple[str, str]:
    """A row's algorithm and vectorize setting (rows measured before the option ran with auto)."""
    return row["algorithm"], row.get("vectorize", "auto")


if __name__ == "__main__":
    main()
