"""Comparing runs: accuracy against simulated time and against rounds, and a summary table.

Time-to-accuracy is read off the best-so-far accuracy curve with linear interpolation between
evaluated points, so a noisy curve that touches the target once and falls back still counts
from the first crossing, and the figure does not depend on the evaluation grid's coarseness
more than it must.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from raysim.results.figures import pyplot
from raysim.results.results import Results, save_figure


def time_to_target(rounds: pd.DataFrame, target: float, *, x: str = "sim_time") -> float:
    """First ``x`` (sim_time or round) at which the best-so-far accuracy reaches ``target``; NaN if never."""
    evaluated = rounds.dropna(subset=["test_accuracy"]).sort_values("round")
    xs = evaluated[x].to_numpy(dtype=float)
    best = np.maximum.accumulate(evaluated["test_accuracy"].to_numpy(dtype=float))
    hits = np.flatnonzero(best >= target)
    if not len(hits):
        return float("nan")
    i = int(hits[0])
    if i == 0:
        return float(xs[0])
    x0, x1, y0, y1 = xs[i - 1], xs[i], best[i - 1], best[i]
    return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))


def summarise(results: Results, *, target: float) -> pd.DataFrame:
    """One row per run: rounds, simulated time, accuracy, time and rounds to ``target``, traffic."""
    rows = []
    for (scenario, run_id), rounds in results.rounds.groupby(["scenario", "run_id"], sort=True):
        clients = results.clients[(results.clients.scenario == scenario) & (results.clients.run_id == run_id)]
        accuracy = rounds["test_accuracy"].dropna()
        rows.append({
            "scenario": scenario,
            "run_id": run_id,
            "rounds": int(rounds["round"].max()),
            "sim_time": float(rounds["sim_time"].max()),
            "final_accuracy": float(accuracy.iloc[-1]) if len(accuracy) else float("nan"),
            "best_accuracy": float(accuracy.max()) if len(accuracy) else float("nan"),
            f"sim_time_to_{target:g}": time_to_target(rounds, target, x="sim_time"),
            f"rounds_to_{target:g}": time_to_target(rounds, target, x="round"),
            "updates_applied": int((clients["status"] == "applied").sum()),
            "updates_lost": int(clients["status"].isin(["dropout", "offline", "late", "excess", "straggler", "discarded"]).sum()),
            "messages_saved": int(rounds.get("messages_saved", pd.Series([0])).sum()),
            "mean_staleness": float(clients.loc[clients.status == "applied", "staleness"].mean()),
            "MB_up": float(rounds["bytes_up"].sum() / 1e6),
        })
    return pd.DataFrame(rows)


def plot_comparison(results: Results, path: Path) -> None:
    """Accuracy against simulated time (left) and against rounds (right), one line per run."""
    plt = pyplot()

    fig, (by_time, by_round) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (scenario, run_id), rounds in results.rounds.groupby(["scenario", "run_id"], sort=True):
        evaluated = rounds.dropna(subset=["test_accuracy"])
        by_time.plot(evaluated["sim_time"], evaluated["test_accuracy"], label=scenario)
        by_round.plot(evaluated["round"], evaluated["test_accuracy"], label=scenario)
    by_time.set(xlabel="simulated time (s)", ylabel="test accuracy", title="accuracy vs simulated time")
    by_round.set(xlabel="round (server steps)", ylabel="test accuracy", title="accuracy vs rounds", xscale="log")
    for ax in (by_time, by_round):
        ax.grid(alpha=0.3)
    by_time.legend(fontsize=8)
    save_figure(fig, path)
