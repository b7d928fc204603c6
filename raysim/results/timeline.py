"""The timeline of one run: who was busy when on the simulated clock, and how each task ended.

One row per client (a deterministic sample where there are many, ``sampled_clients``), each task
drawn as its download, compute and upload spans (spans.py), coloured by its fate, with the
server's aggregations as vertical marks. It stays readable at 1,000 clients and 1,000 rounds:
rows are sampled, every bar keeps at least a hairline's width, many aggregations become a rug of
ticks along the top with a zoomed panel on the first ``WINDOW`` of them, and a strip below counts
the busy clients of the whole population at each moment (the density where bars would overlap).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from raysim.results.figures import Picture, pyplot
from raysim.results.spans import FATES

MAX_ROWS = 40  # clients drawn as rows
TOP = 10  # of which the busiest, by number of tasks
MARKS = 60  # aggregations drawn as full-height lines; more become ticks, and a zoomed panel
WINDOW = 30  # aggregations in the zoomed panel
FATE_COLOURS = dict(zip(FATES, ("#1f77b4", "#17becf", "#ff7f0e", "#d62728", "#7f7f7f", "#8c564b")))
PHASES = ("download", "compute", "upload")  # spans' phases, between the four time columns
_BOUNDS = {"download": ("start", "download_end"), "compute": ("download_end", "compute_end"),
           "upload": ("compute_end", "end")}
_HEIGHT = {"download": 0.36, "compute": 0.8, "upload": 0.36}
_GREYS = ("#c7c7c7", "#525252", "#969696")


def sampled_clients(spans: pd.DataFrame, limit: int = MAX_ROWS) -> tuple[list[int], str]:
    """The clients to draw, by id, and a sentence saying how they were chosen: all of them when
    they fit, else the ``TOP`` with the most tasks (ties to the lower id) and an evenly spaced
    sample of the others by client id."""
    counts = spans.groupby("client_id").size()
    ids = sorted(int(c) for c in counts.index)
    if len(ids) <= limit:
        return ids, f"all {len(ids)} clients with tasks"
    busiest = sorted(counts.index, key=lambda c: (-counts[c], c))[:TOP]
    rest = [c for c in ids if c not in set(busiest)]
    spaced = [rest[int(i)] for i in np.linspace(0, len(rest) - 1, limit - TOP).round()]
    return (sorted(int(c) for c in {*busiest, *spaced}),
            f"{limit} of {len(ids)} clients with tasks: the {TOP} with the most tasks and "
            f"{limit - TOP} more evenly spaced by client id")


def busy_counts(spans: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The moments at which any task changes phase, and per phase how many tasks were in it from
    each moment to the next (all clients): a step function exact at every scale, so a task of two
    seconds in a run of two hours still counts."""
    bounds = {phase: tuple(spans[c].to_numpy(dtype=float) for c in _BOUNDS[phase]) for phase in PHASES}
    times = np.unique(np.concatenate([np.concatenate(ab) for ab in bounds.values()]))
    counts = {}
    for phase, (a, b) in bounds.items():
        started, ended = np.sort(a[b > a]), np.sort(b[b > a])
        counts[phase] = np.searchsorted(started, times, side="right") - np.searchsorted(ended, times, side="right")
    return times, counts


def timeline_figure(spans: pd.DataFrame, aggregations: np.ndarray, *, title: str, until: float) -> Picture:
    """One run's timeline (see the module's docstring), its x axis from 0 to ``until`` so that the
    runs of a comparison line up on simulated time."""
    plt = pyplot()
    clients, chosen = sampled_clients(spans)
    shown = spans[spans["client_id"].isin(clients)]
    aggregations = np.sort(aggregations[np.isfinite(aggregations)])
    zoom = len(aggregations) > MARKS
    rows_in = max(1.6, 0.15 * len(clients) + 0.8)
    heights = [rows_in, rows_in, 1.3] if zoom else [rows_in, 1.3]
    fig, axes = plt.subplots(len(heights), 1, figsize=(12, sum(heights) + 0.6),
                             gridspec_kw={"height_ratios": heights})
    _lanes(axes[0], shown, clients, aggregations, (0.0, until), f"{title}: tasks on the simulated clock", ticks=zoom)
    if zoom:
        _lanes(axes[1], shown, clients, aggregations, (0.0, float(aggregations[WINDOW - 1])),
               f"zoom: the first {WINDOW} aggregations", ticks=False)
    _density(axes[-1], spans, until)
    handles = [plt.Rectangle((0, 0), 1, 1, color=FATE_COLOURS[f]) for f in FATES if f in set(spans["fate"])]
    labels = [f for f in FATES if f in set(spans["fate"])]
    handles.append(plt.Line2D([], [], color="black", lw=1))
    axes[0].legend(handles, [*labels, "aggregation"], fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    return Picture(fig, alt=_alt(spans, clients, aggregations, title, until), caption=_caption(chosen, zoom))


def _lanes(ax, spans: pd.DataFrame, clients: list[int], aggregations: np.ndarray, window: tuple[float, float],
           title: str, *, ticks: bool) -> None:
    """The sampled clients' rows: thin download and upload bars around a full-height compute bar;
    the aggregations as lines across them, or as ``ticks`` along the top where they are many."""
    from matplotlib.collections import PolyCollection

    row = {c: i for i, c in enumerate(clients)}
    y = spans["client_id"].map(row).to_numpy(dtype=float)
    colours = spans["fate"].map(FATE_COLOURS).to_numpy()
    empty = (spans["end"] <= spans["start"]).to_numpy()  # an offline Flower node: a task of no length
    for phase in PHASES:
        a, b = (spans[c].to_numpy(dtype=float) for c in _BOUNDS[phase])
        keep = (b > a) | (empty if phase == "compute" else False)
        h = _HEIGHT[phase] / 2
        verts = np.stack([np.stack([a, y - h], 1), np.stack([b, y - h], 1),
                          np.stack([b, y + h], 1), np.stack([a, y + h], 1)], 1)[keep]
        # an edge of the fill's colour: a bar narrower than a pixel still shows as a hairline
        ax.add_collection(PolyCollection(verts, facecolors=colours[keep], edgecolors=colours[keep], linewidths=0.4))
    ax.vlines(aggregations, 1.0 if ticks else 0.0, 1.03 if ticks else 1.0, transform=ax.get_xaxis_transform(),
              color="black", lw=0.4 if ticks else 0.6, alpha=0.7 if ticks else 0.45, clip_on=not ticks)
    ax.set_xlim(*window)
    ax.set_ylim(len(clients) - 0.5, -0.5)
    step = max(1, len(clients) // 40)
    ax.set_yticks(range(0, len(clients), step), [f"{c:.7g}" for c in clients[::step]], fontsize=6)
    ax.set(xlabel="simulated time (s)", ylabel="client")
    ax.set_title(title, pad=16 if ticks else 6)
    ax.grid(axis="x", alpha=0.3)


def _density(ax, spans: pd.DataFrame, until: float) -> None:
    times, counts = busy_counts(spans)
    ax.stackplot(times, *(counts[p] for p in PHASES), labels=PHASES, colors=_GREYS, step="post")
    ax.set_xlim(0.0, until)
    ax.set(xlabel="simulated time (s)", ylabel="clients busy",
           title=f"all {spans['client_id'].nunique()} clients: how many were downloading, computing, uploading")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    ax.grid(alpha=0.3)


def _alt(spans: pd.DataFrame, clients: list[int], aggregations: np.ndarray, title: str, until: float) -> str:
    fates = spans["fate"].value_counts()
    told = ", ".join(f"{int(fates[f])} {f}" for f in FATES if f in fates)
    return (f"Timeline of {title} on the simulated clock from 0 to {until:.1f} s: {len(clients)} of "
            f"{spans['client_id'].nunique()} clients as rows, each task drawn as its download, compute and upload "
            f"and coloured by fate ({len(spans)} tasks in all: {told}); {len(aggregations)} server aggregations "
            "marked; below, how many clients were downloading, computing and uploading at each moment.")


def _caption(chosen: str, zoom: bool) -> str:
    return (f"Rows: {chosen}. Thin bars are the download and upload (or, on a gossip or hierarchical network, "
            "the exchange), thick ones the compute; a star run's task that dropped out or went offline is drawn "
            "over its planned span (its row records the fate, not the moment it failed)."
            + (f" With more than {MARKS} aggregations they are ticks above the top panel; the middle panel zooms "
               f"on the first {WINDOW}." if zoom else ""))
