"""raysim against the ideal loop on workloads W1-W4 (../shared/reference/workloads.md).

    python benchmarks/run.py                      # W1, W2, W3 and the W3 scaling table
    python benchmarks/run.py --only W2 --rounds 3
    python benchmarks/run.py --gpu                # adds W4 (needs a CUDA GPU)
    python benchmarks/run.py --only W1 --repeat 3 # medians of 3 alternating raysim / ideal runs

Prints a table (start-up, median round, total, accuracy, peak memory of all processes, ratio
to the ideal loop) and writes it as JSON (benchmarks/results.json by default). Peak memory is
the largest sum of proportional set sizes (PSS: shared pages split between the processes that
map them, so Ray's object store is counted once) over every process on the machine, minus the
sum before the run. With ``--repeat N`` raysim and the ideal loop alternate N times and every
figure is the median over the repeats (this machine's timings vary by 10-20% from run to run);
the JSON keeps each repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from environment import environment  # noqa: E402
from ideal import best_ideal  # noqa: E402
from raysim.api import run  # noqa: E402
from raysim.data import load_dataset, partition  # noqa: E402
from raysim.scenario.sections import parse_scenario  # noqa: E402
from raysim.seeding import Stream, derive_seed  # noqa: E402


@dataclass(frozen=True)
class Workload:
    name: str
    clients: int
    per_round: int
    partition: dict
    model: str
    batch: int
    rounds: int
    lr: float = 0.05
    epochs: int = 1
    gpu: bool = False
    ideal: bool = True
    extra: dict = field(default_factory=dict)


WORKLOADS = [
    Workload("W1 fmnist-cnn", 100, 10, {"kind": "iid"}, "cnn", 32, 5),
    Workload("W2 fmnist-logreg-many", 1000, 100, {"kind": "iid"}, "logreg", 10, 5),
    Workload("W3 scale", 10000, 1000, {"kind": "iid"}, "logreg", 6, 3),
    *(Workload(f"W3 population {n:,}", n, 1000, {"kind": "sampled", "size": 6}, "logreg", 6, 3, ideal=False)
      for n in (1000, 10000, 100000)),
    Workload("W4 gpu", 1000, 100, {"kind": "dirichlet", "beta": 0.5}, "cnn", 32, 5, gpu=True, ideal=False),
]


class PeakMemory:
    """Samples the PSS of all processes in a background thread; ``peak_mb`` above the baseline."""

    def __init__(self, interval: float = 0.5):  # one sample costs ~25 ms of CPU with Ray running
        self.interval = interval
        self.baseline = self._total()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _total() -> int:
        total = 0
        for proc in psutil.process_iter():
            try:
                total += proc.memory_full_info().pss
            except (psutil.Error, AttributeError):
                continue
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.baseline) / 2**20


def scenario_for(w: Workload, *, rounds: int, vectorize: str):
    return parse_scenario({
        "run": {"name": w.name.split()[0].lower(), "seed": 0, "rounds": rounds, "eval_every": rounds,
                "checkpoint_every": 0},
        "data": {"dataset": "fashion_mnist", "num_clients": w.clients, "partition": w.partition},
        "model": {"name": w.model},
        "client": {"epochs": w.epochs, "batch_size": w.batch, "lr": w.lr},
        "selection": {"clients_per_round": w.per_round},
        "resources": {"num_cpus": 1, "num_gpus": 0.5 if w.gpu else 0, "vectorize": vectorize, **w.extra},
    })


def _forget_loaded_data() -> None:
    """Both sides read the data from disk inside their measured time, as a fresh process would."""
    from raysim.data.datasets import forget_loaded

    forget_loaded()


def measure_raysim(w: Workload, *, rounds: int, vectorize: str) -> dict:
    _forget_loaded_data()
    with tempfile.TemporaryDirectory() as results, PeakMemory() as memory:
        outcome = run(scenario_for(w, rounds=rounds, vectorize=vectorize), results_root=results)
        frame = pd.read_parquet(outcome.run_dir / "rounds.parquet")
    return {"startup_s": outcome.summary["startup_s"], "round_median_s": float(frame["round_wall_s"].median()),
            "total_s": outcome.summary["total_s"], "accuracy": outcome.summary["final_accuracy"],
            "peak_memory_mb": memory.peak_mb}


def measure_ideal(w: Workload, *, rounds: int, cores: int) -> dict:
    _forget_loaded_data()
    loading = time.perf_counter()
    ds = load_dataset("fashion_mnist")
    load_s = time.perf_counter() - loading
    scenario = scenario_for(w, rounds=rounds, vectorize="off")
    parts = partition(ds.train_y, w.clients, scenario.data.partition, seed=derive_seed(0, Stream.PARTITION),
                      num_classes=10)
    with PeakMemory() as memory:
        result = best_ideal(x=ds.inputs(ds.train_x), y=ds.train_y, test_x=ds.inputs(ds.test_x), test_y=ds.test_y,
                            parts=parts, model=w.model, input_shape=ds.input_shape, per_round=w.per_round,
                            rounds=rounds, epochs=w.epochs, batch=w.batch, lr=w.lr, seed=0, cores=cores)
    return {"mode": result.mode, "startup_s": load_s + result.startup_s, "round_median_s": float(np.median(result.round_s)),
            "total_s": load_s + result.total_s, "accuracy": result.accuracy, "peak_memory_mb": memory.peak_mb}


def measure(w: Workload, *, rounds: int, vectorize: str, cores: int) -> dict:
    """One repeat: raysim, then the ideal loop, and their ratios."""
    row = {f"raysim_{k}": v for k, v in measure_raysim(w, rounds=rounds, vectorize=vectorize).items()}
    if w.ideal:
        ideal = measure_ideal(w, rounds=rounds, cores=cores)
        row.update({f"ideal_{k}": v for k, v in ideal.items()})
        row["ratio_round"] = row["raysim_round_median_s"] / ideal["round_median_s"]
        row["ratio_total"] = row["raysim_total_s"] / ideal["total_s"]
    return row


def median_row(repeats: list[dict]) -> dict:
    """Each numeric figure's median over the repeats (ratios too: the median of the ratios)."""
    row = dict(repeats[0])
    for key, value in row.items():
        if isinstance(value, float):
            row[key] = float(np.median([r[key] for r in repeats]))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated workload ids, e.g. W1,W2")
    parser.add_argument("--rounds", type=int, help="override every workload's rounds")
    parser.add_argument("--repeat", type=int, default=1, help="alternate raysim and the ideal loop N times; report medians")
    parser.add_argument("--gpu", action="store_true", help="also run W4 (CUDA)")
    parser.add_argument("--vectorize", default="auto", choices=["auto", "on", "off"],
                        help="raysim's batched client training (resources.vectorize)")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    cores = os.cpu_count() or 1
    chosen = [w for w in WORKLOADS if (args.gpu or not w.gpu)
              and (not args.only or w.name.split()[0] in args.only.split(","))]
    rows = []
    for w in chosen:
        rounds = args.rounds or w.rounds
        repeats = [measure(w, rounds=rounds, vectorize=args.vectorize, cores=cores) for _ in range(args.repeat)]
        row = {"workload": w.name, "rounds": rounds, "repeats": len(repeats), **median_row(repeats)}
        if len(repeats) > 1 and "ratio_total" in row:
            row["ratio_total_range"] = [min(r["ratio_total"] for r in repeats), max(r["ratio_total"] for r in repeats)]
        rows.append({**row, "each_repeat": repeats})
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
    table = pd.DataFrame([{k: v for k, v in r.items() if k not in ("each_repeat", "ratio_total_range")} for r in rows])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    machine = {"cores": cores, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
               "python": platform.python_version(), "platform": platform.platform(), "vectorize": args.vectorize}
    args.json.write_text(json.dumps({"machine": machine, "environment": environment(), "rows": rows}, indent=2,
                                    default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
