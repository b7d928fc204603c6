"""Summaries over seeds: each arm's mean, spread and 95% t-interval, and paired differences.

With k seeds per arm the interval is ``mean +- t_{0.975, k-1} s / sqrt(k)`` with the sample
std ``s`` (ddof 1: the seeds are a sample of what the arm could give). Two arms run on the same
seeds (same data and training seeds) are compared seed by seed: the differences ``d_j = a_j -
b_j`` carry their own interval and t statistic, which removes the seed-to-seed variance both
arms share, so a difference can be clear even when the two arms' intervals overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from raysim.results.figures import pyplot


@dataclass(frozen=True)
class Summary:
    """``arms``: one row per arm (n, mean, std, ci_low, ci_high); ``differences``: one row per
    pair of arms over their common seeds (n, mean_diff, ci_low, ci_high, t, p)."""

    arms: pd.DataFrame
    differences: pd.DataFrame


def interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean, std with ddof 1, low, high) of the t-interval; the spread is NaN for one value."""
    a = np.asarray(values, dtype=float)
    mean = float(a.mean())
    if len(a) < 2:
        return mean, float("nan"), float("nan"), float("nan")
    std = float(a.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(a) - 1)) * std / np.sqrt(len(a))
    return mean, std, float(mean - half), float(mean + half)


def summarize(frame: pd.DataFrame, by: Sequence[str], *, metric: str = "final_accuracy",
              pair_on: Sequence[str] = ("run.seed",)) -> Summary:
    """Summarises ``metric`` over the rows of each arm (a value of the ``by`` columns), e.g.
    ``summarize(load(sweep_dir).summary, by=["client.lr", "server.strategy"])``; arms are paired
    on the ``pair_on`` columns (the seeds) for the differences."""
    by, pair_on = list(by), [c for c in pair_on if c in frame.columns and c not in by]
    missing = [c for c in (*by, metric) if c not in frame.columns]
    if missing:
        raise KeyError(f"no column {missing} to summarise; the frame has {sorted(frame.columns)}")
    rows, samples = [], {}
    for arm, group in frame.groupby(by, sort=True):
        arm = arm if isinstance(arm, tuple) else (arm,)
        mean, std, low, high = interval(group[metric])
        rows.append({**dict(zip(by, arm)), "n": len(group), "mean": mean, "std": std, "ci_low": low, "ci_high": high})
        if pair_on and group.duplicated(pair_on).any():
            raise ValueError(f"arm {_label(by, arm)} has several rows per {pair_on}: pairing needs one per seed; "
                             "add the other swept keys to by, or pass pair_on=()")
        samples[arm] = group.set_index(pair_on)[metric] if pair_on else None
    return Summary(pd.DataFrame(rows), _differences(samples, by) if pair_on else pd.DataFrame())


def _differences(samples: dict[tuple, pd.Series], by: list[str]) -> pd.DataFrame:
    rows = []
    for a, b in combinations(sorted(samples), 2):
        common = samples[a].index.intersection(samples[b].index)
        d = (samples[a].loc[common] - samples[b].loc[common]).to_numpy(dtype=float)
        if not len(d):
            continue
        mean, std, low, high = interval(d)
        t = mean / (std / np.sqrt(len(d))) if len(d) > 1 and std > 0 else float("nan")
        p = float(2 * stats.t.sf(abs(t), len(d) - 1)) if np.isfinite(t) else float("nan")
        rows.append({"arm_a": _label(by, a), "arm_b": _label(by, b), "n": len(d), "mean_diff": mean,
                     "ci_low": low, "ci_high": high, "t": t, "p": p})
    return pd.DataFrame(rows)


def _label(by: list[str], arm: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(by, arm))


def arms_figure(rounds: pd.DataFrame, by: Sequence[str], *, metric: str = "test_accuracy"):
    """``metric`` against rounds, one line per arm: the mean over its seeds with the 95%
    t-interval as a ribbon (a matplotlib figure)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 4.5))
    evaluated = rounds.dropna(subset=[metric])
    for arm, group in evaluated.groupby(list(by), sort=True):
        arm = arm if isinstance(arm, tuple) else (arm,)
        curve = pd.DataFrame([(r, *interval(g[metric])) for r, g in group.groupby("round")],
                             columns=["round", "mean", "std", "low", "high"])
        line, = ax.plot(curve["round"], curve["mean"], marker=".", label=_label(list(by), arm))
        ax.fill_between(curve["round"], curve["low"], curve["high"], color=line.get_color(), alpha=0.2)
    ax.set(xlabel="round", ylabel=metric, title=f"{metric}: mean over seeds, 95% t-interval")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
