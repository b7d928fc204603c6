"""Where the time went: per round, the life of the updates the server applied, split into
transfer, compute and waiting at the server; and how stale the applied updates were.

An applied update's life runs from its dispatch to the aggregation that applied it: its
download and upload (network queueing included, spans.py), its compute, then the wait until
the server aggregated (for the slowest of the round, a deadline, a period or a buffer to fill).
Averaged over a round's applied updates, the three parts of a synchronous round add up to the
round's duration, so the bar shows how much of it went to waiting for the slowest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from raysim.results.figures import Picture, pyplot

PARTS = ("transfer", "compute", "wait")
_COLOURS = ("#9467bd", "#2ca02c", "#ff7f0e")


def round_split(spans: pd.DataFrame, rounds: pd.DataFrame) -> pd.DataFrame:
    """One run's rounds: the mean seconds an applied update spent in each of ``PARTS``, and how
    many updates were applied (rounds without any are left out)."""
    applied = spans[spans["fate"].isin(["applied", "stale-applied"])]
    ends = pd.to_numeric(rounds.drop_duplicates("round").set_index("round")["sim_time"], errors="coerce")
    aggregated = applied["round"].map(ends.where(np.isfinite(ends))).to_numpy(dtype=float)  # NaN: left out
    parts = pd.DataFrame({
        "round": applied["round"].to_numpy(),
        "transfer": (applied["download_end"] - applied["start"] + applied["end"] - applied["compute_end"]).to_numpy(),
        "compute": (applied["compute_end"] - applied["download_end"]).to_numpy(),
        "wait": np.clip(aggregated - applied["end"].to_numpy(dtype=float), 0.0, None),
    }).dropna()
    split = parts.groupby("round", sort=True)[list(PARTS)].mean()
    return split.assign(updates=parts.groupby("round").size()).reset_index()


def time_split_figure(runs: list[tuple[str, pd.DataFrame, pd.Series]]) -> Picture:
    """Per run (its title, ``round_split``, its applied updates' staleness): the rounds' split as
    stacked bars, and the staleness histogram beside it."""
    plt = pyplot()
    fig, axes = plt.subplots(len(runs), 2, figsize=(12, 2.8 * len(runs)), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1]})
    for (title, split, staleness), (bars, hist) in zip(runs, axes):
        # one stepped area per part, a round wide (a bar per round would be thousands of patches
        # on a long run); a round without an applied update shows as a gap of height 0
        span = range(int(split["round"].min()), int(split["round"].max()) + 1) if len(split) else []
        filled = split.set_index("round").reindex(span, fill_value=0.0)
        edges = np.append(filled.index - 0.5, filled.index[-1] + 0.5) if len(filled) else []
        bars.stackplot(edges, *(np.append(filled[p], filled[p].iloc[-1:]) for p in PARTS), labels=PARTS,
                       colors=_COLOURS, step="post")
        bars.set(xlabel="round", ylabel="s per applied update", title=f"{title}: where the time went")
        bars.xaxis.get_major_locator().set_params(integer=True)
        bars.legend(fontsize=7, loc="upper right")
        bars.grid(alpha=0.3)
        _staleness(hist, staleness)
    return Picture(fig, alt=" ".join(_said(title, split, staleness) for title, split, staleness in runs))


def _staleness(ax, staleness: pd.Series) -> None:
    values = staleness.to_numpy(dtype=float)
    if not len(values) or values.max() <= 0:
        ax.text(0.5, 0.5, "every applied update was fresh\n(staleness 0)" if len(values) else "no update applied",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    top = int(min(values.max(), 200))
    ax.hist(np.minimum(values, top), bins=np.arange(top + 2) - 0.5, color="#1f77b4")
    ax.set(xlabel="staleness (server versions behind)", ylabel="applied updates", title="staleness of applied updates")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)


def _said(title: str, split: pd.DataFrame, staleness: pd.Series) -> str:
    """The figure's text alternative for one run."""
    if split.empty:
        return f"{title}: no update was applied, so no round's time is split."
    weights = split["updates"] / split["updates"].sum()
    mean = {part: float((split[part] * weights).sum()) for part in PARTS}
    share = sum(mean.values()) or 1.0
    told = ", ".join(f"{part} {mean[part]:.2f} s ({100 * mean[part] / share:.0f}%)" for part in PARTS)
    stale = (f"staleness of applied updates: mean {staleness.mean():.2f}, max {int(staleness.max())}"
             if len(staleness) and staleness.max() > 0 else "every applied update was fresh (staleness 0)")
    return (f"{title}: bars per round ({len(split)} rounds) of an applied update's mean time from dispatch to "
            f"aggregation; over the run {told}; {stale}.")
