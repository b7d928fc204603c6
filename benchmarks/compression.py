"""Accuracy against bytes for each update codec on Fashion-MNIST (scenarios/compression/fmnist_2nn.toml).

    python benchmarks/compression.py                  # every codec, the scenario's 50 rounds
    python benchmarks/compression.py --rounds 10 --only dense,topk1_ef
    python benchmarks/compression.py --long topk1_ef,topk1 --long-rounds 200   # these run longer
    python benchmarks/compression.py --rows-from rows.json   # no runs: the table and plot of saved rows

Runs the scenario once per codec (in-process executor: the simulated figures are the same on
Ray, only wall time differs), prints a table (final accuracy, MB up, the compression ratio,
the bytes and simulated time to reach the dense run's final accuracy minus 1 point) and writes
it as JSON (benchmarks/compression.json) with every round's accuracy and cumulative bytes, and
the plot docs/compression_fmnist.png. The target is always the dense run's at the scenario's
rounds; ``--long`` codecs run ``--long-rounds`` rounds to show when (and whether) they reach it.
Every figure is simulated, hence the same on any machine. Bytes are payload bytes, unframed, for
dense and compressed runs alike (raysim/compression/codec.py), so fp32 has a ratio of exactly 1.0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from environment import environment  # noqa: E402  (what the figures ran with: benchmarks/environment.py)
from raysim.api import run  # noqa: E402
from raysim.results import load  # noqa: E402
from raysim.scenario.sections import load_scenario  # noqa: E402

SCENARIO = ROOT / "scenarios" / "compression" / "fmnist_2nn.toml"
CODECS = {  # label -> [compression] overrides
    "dense": {},
    "fp16": {"uplink": "fp16"},
    "bf16": {"uplink": "bf16"},
    "int8": {"uplink": "int", "bits": 8},
    "int4": {"uplink": "int", "bits": 4},
    "qsgd15 (FedPAQ)": {"uplink": "qsgd", "levels": 15},
    "topk1_ef": {"uplink": "topk", "ratio": 0.01, "error_feedback": "true"},
    "topk1": {"uplink": "topk", "ratio": 0.01},
    "topk10_ef": {"uplink": "topk", "ratio": 0.1, "error_feedback": "true"},
    "randk10": {"uplink": "randk", "ratio": 0.1},
    "mask10": {"uplink": "mask", "ratio": 0.1},
    "sign_ef": {"uplink": "sign", "error_feedback": "true"},
}


def run_codec(label: str, rounds: int | None, root: Path) -> dict:
    overrides = ["run.executor=local", *(f"compression.{k}={v}" for k, v in CODECS[label].items())]
    if rounds:
        overrides.append(f"run.rounds={rounds}")
    outcome = run(load_scenario(SCENARIO, tuple(overrides)), results_root=root)
    rounds_frame = load(outcome.run_dir).rounds
    return {
        "label": label, "compression": CODECS[label], "rounds": len(rounds_frame),
        "accuracy": rounds_frame["test_accuracy"].tolist(),
        "mb_up": (rounds_frame["bytes_up"].cumsum() / 1e6).tolist(),
        "sim_time": rounds_frame["sim_time"].tolist(),
        "ratio": float(rounds_frame["compression_ratio"].iloc[0]) if "compression_ratio" in rounds_frame else 1.0,
    }


def first_reaching(row: dict, target: float) -> tuple[float | None, float | None]:
    """MB up and simulated seconds when the accuracy first reaches ``target`` (None: never)."""
    for accuracy, mb, t in zip(row["accuracy"], row["mb_up"], row["sim_time"]):
        if accuracy >= target:
            return mb, t
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="override the scenario's rounds")
    parser.add_argument("--only", default="", help="comma-separated labels (dense is always run)")
    parser.add_argument("--long", default="", help="comma-separated labels that run --long-rounds rounds")
    parser.add_argument("--long-rounds", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "compression.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "compression_fmnist.png")
    parser.add_argument("--rows-from", type=Path, default=None,
                        help="a JSON written by this script: report its rows (dense first) instead of running")
    args = parser.parse_args()
    if args.rows_from:  # the rows keep the environment they were measured in (none in a file older than it)
        saved = json.loads(args.rows_from.read_text())
        rows, measured_in = saved["rows"], saved.get("environment")
    else:
        measured_in = environment()
        labels = ["dense", *[l for l in (args.only.split(",") if args.only else CODECS) if l != "dense"]]
        with tempfile.TemporaryDirectory() as root:
            longer = set(args.long.split(",")) - {"", "dense"}
            rows = [run_codec(label, args.long_rounds if label in longer else args.rounds, Path(root))
                    for label in labels]
    report(rows, measured_in, args.out, args.plot)


def report(rows: list[dict], measured_in: dict | None, out: Path, plot: Path) -> None:
    """Prints the table, writes the rows (and the environment they were measured in) as JSON and
    draws accuracy against cumulative MB up."""
    target = rows[0]["accuracy"][-1] - 0.01
    dense_mb, _ = first_reaching(rows[0], target)
    print(f"target: dense final accuracy {rows[0]['accuracy'][-1]:.4f} minus 1 point = {target:.4f}\n")
    print("| codec | ratio | rounds | final accuracy | MB up (all rounds) | MB up to target | fewer bytes than dense | "
          "sim s to target |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        mb, t = first_reaching(row, target)
        row.update(target=target, mb_to_target=mb, sim_s_to_target=t)
        fewer = f"{dense_mb / mb:.1f}x" if mb else "not reached"
        print(f"| {row['label']} | {row['ratio']:.1f} | {row['rounds']} | {row['accuracy'][-1]:.4f} | {row['mb_up'][-1]:.1f} | "
              f"{'-' if mb is None else f'{mb:.2f}'} | {fewer} | {'-' if t is None else f'{t:.0f}'} |")
    out.write_text(json.dumps({"scenario": str(SCENARIO.relative_to(ROOT)), "environment": measured_in, "rows": rows},
                              indent=1))
    figure, axis = plt.subplots(figsize=(7, 4.5))
    colours = plt.cm.tab20.colors
    for index, row in enumerate(rows):
        axis.plot(row["mb_up"], row["accuracy"], label=f"{row['label']} ({row['rounds']} rounds)",
                  color=colours[(2 * index) % 20 + (2 * index) // 20], marker="." if row["label"] == "dense" else None)
    axis.axhline(target, color="grey", linestyle=":", linewidth=1)
    axis.set(xscale="log", xlabel="cumulative MB uploaded (payload bytes)", ylabel="test accuracy",
             title="Fashion-MNIST, 2NN, 10 of 100 clients per round")
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(plot, dpi=110)
    print(f"\nwrote {out} and {plot}")


if __name__ == "__main__":
    main()
