"""Comparing runs: their primary metric (accuracy, MSE, ... results/metric.py) against simulated
time and against rounds, and a summary table.

Time-to-target is read off the best-so-far curve (the highest accuracy, the lowest MSE) with
linear interpolation between evaluated points, so a noisy curve that touches the target once and falls back still counts
from the first crossing, and the figure does not depend on the evaluation grid's coarseness
more than it must.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from raysim.results.figures import pyplot
from raysim.results.metric import Metric
from raysim.results.results import Results, save_figure


def time_to_target(rounds: pd.DataFrame, target: float, *, x: str = "sim_time", metric: Metric = Metric()) -> float:
    """First ``x`` (sim_time or round) at which the best-so-far ``metric`` (accuracy, or the least
    MSE so far for a lower-is-better metric) reaches ``target``; NaN if never."""
    evaluated = rounds.dropna(subset=[metric.column]).sort_values("round")
    xs = evaluated[x].to_numpy(dtype=float)
    best = metric.best_so_far(evaluated[metric.column].to_numpy(dtype=float))
    hits = np.flatnonzero(metric.reaches(best, target))
    if not len(hits):
        return float("nan")
    i = int(hits[0])
    if i == 0:
        return float(xs[0])
    x0, x1, y0, y1 = xs[i - 1], xs[i], best[i - 1], best[i]
    return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))


def summarise(results: Results, *, target: float) -> pd.DataFrame:
    """One row per run: rounds, simulated time, the runs' primary metric (final, best), time and
    rounds to ``target`` in it, traffic."""
    metric = results.metric
    rows = []
    for (scenario, run_id), rounds in results.rounds.groupby(["scenario", "run_id"], sort=True):
        clients = results.clients[(results.clients.scenario == scenario) & (results.clients.run_id == run_id)]
        scored = rounds[metric.column].dropna() if metric.column in rounds else pd.Series(dtype=float)
        rows.append({
            "scenario": scenario,
            "run_id": run_id,
            "rounds": int(rounds["round"].max()),
            "sim_time": float(rounds["sim_time"].max()),
            f"final_{metric.name}": float(scored.iloc[-1]) if len(scored) else float("nan"),
            f"best_{metric.name}": metric.best(scored) if len(scored) else float("nan"),
            f"sim_time_to_{target:g}": time_to_target(rounds, target, x="sim_time", metric=metric),
            f"rounds_to_{target:g}": time_to_target(rounds, target, x="round", metric=metric),
            "updates_applied": int((clients["status"] == "applied").sum()),
            "updates_lost": int(clients["status"].isin(["dropout", "offline", "late", "excess", "straggler", "discarded"]).sum()),
            "messages_saved": int(rounds.get("messages_saved", pd.Series([0])).sum()),
            "mean_staleness": float(clients.loc[clients.status == "applied", "staleness"].mean()),
            "MB_up": float(rounds["bytes_up"].sum() / 1e6),
        })
    return pd.DataFrame(rows)


def plot_comparison(results: Results, path: Path) -> None:
    """The runs' primary metric against simulated time (left) and against rounds (right), one
    line per run."""
    plt = pyplot()
    metric = results.metric

    fig, (by_time, by_round) = plt.subplots(1, 2, figsize=(12, 4.5))
    for (scenario, run_id), rounds in results.rounds.groupby(["scenario", "run_id"], sort=True):
        evaluated = rounds.dropna(subset=[metric.column])
        by_time.plot(evaluated["sim_time"], evaluated[metric.column], label=scenario)
        by_round.plot(evaluated["round"], evaluated[metric.column], label=scenario)
    by_time.set(xlabel="simulated time (s)", ylabel=metric.label, title=f"{metric.name} vs simulated time")
    by_round.set(xlabel="round (server steps)", ylabel=metric.label, title=f"{metric.name} vs rounds", xscale="log")
    for ax in (by_time, by_round):
        ax.grid(alpha=0.3)
    by_time.legend(fontsize=8)
    save_figure(fig, path)
