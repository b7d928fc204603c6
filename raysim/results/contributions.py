"""The contribution tables' derived files: a per-client summary and the cumulative plot.

    contributions.parquet        round, client_id, method, value, cumulative, utility_calls, seconds, ...,
                                 stopped, valued
    contribution_summary.parquet per method and client: total, rounds valued, mean, rank (1 = most)
    contributions.png            cumulative value per client over rounds, one panel per method
"""

from __future__ import annotations

import pandas as pd

from raysim.results.figures import pyplot


def contribution_summary(contributions: pd.DataFrame) -> pd.DataFrame:
    """Per (method, client): total value, rounds valued and the mean over them (rounds absent or
    not valued, e.g. GTG-truncated, left out), rank."""
    keys = ["method", "client_id"]
    every = contributions.groupby(keys)
    summary = pd.DataFrame({
        "rounds_valued": every["valued"].sum().astype(int),
        "mean_value": contributions[contributions["valued"]].groupby(keys)["value"].mean(),  # NaN: never valued
        "total_value": every["value"].sum(),
    }).reset_index()
    summary["rank"] = summary.groupby("method")["total_value"].rank(ascending=False, method="min").astype(int)
    return summary.sort_values(["method", "rank", "client_id"], ignore_index=True)


def contributions_figure(contributions: pd.DataFrame, *, title: str):
    """Cumulative contribution per client by round, one panel per method (a matplotlib figure)."""
    plt = pyplot()

    methods = list(dict.fromkeys(contributions["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 4), squeeze=False)
    for ax, method in zip(axes[0], methods):
        rows = contributions[contributions["method"] == method]
        for client, own in rows.groupby("client_id"):
            ax.plot(own["round"], own["cumulative"], marker=".", label=str(client))
        ax.set(xlabel="round", ylabel="cumulative contribution", title=f"{title}: {method}")
        ax.grid(alpha=0.3)
        if rows["client_id"].nunique() <= 12:
            ax.legend(title="client", fontsize=7)
    return fig
