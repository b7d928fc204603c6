"""The report's view of the simulated clock: for the runs whose tables say when their tasks ran,
one timeline each (timeline.py), aligned on simulated time, and where their time went
(time_split.py); a sentence for each run whose rows hold no task timings (a vertical run).

Everything is drawn from the loaded tables: a received folder is data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from raysim.results.figures import Picture
from raysim.results.results import Results
from raysim.results.spans import task_spans
from raysim.results.time_split import round_split, time_split_figure
from raysim.results.timeline import timeline_figure

MAX_RUNS = 8  # timelines on one page: a sweep's first runs, by scenario and run id


@dataclass(frozen=True)
class Clock:
    """What the report shows of the clock: the pictures, and sentences about the runs left out."""

    timelines: tuple[Picture, ...]
    split: Picture | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Run:
    title: str
    spans: pd.DataFrame
    rounds: pd.DataFrame


def clock(results: Results) -> Clock:
    """The timelines and time split of ``results``' runs (see the module's docstring)."""
    timed, notes = [], []
    clients = dict(iter(results.clients.groupby(["scenario", "run_id"], sort=True))) if not results.clients.empty else {}
    for key, rounds in (results.rounds.groupby(["scenario", "run_id"], sort=True) if not results.rounds.empty else ()):
        title = f"{key[0]} ({key[1]})"
        spans = task_spans(clients.get(key, pd.DataFrame()))
        if spans.empty:
            notes.append(f"{title}: no task timings in this run (its clients.parquet says no task's start and end "
                         "times: a vertical run records each party's bytes)")
        else:
            timed.append(_Run(title, spans, rounds))
    if len(timed) > MAX_RUNS:
        notes.append(f"showing the first {MAX_RUNS} of the {len(timed)} runs with task timings "
                     "(by scenario and run id); report a run's own folder to see another")
    shown = timed[:MAX_RUNS]
    if not shown:
        return Clock((), None, tuple(notes))
    until = max(_end(run) for run in shown)
    timelines = tuple(timeline_figure(run.spans, _aggregations(run.rounds), title=run.title, until=until)
                      for run in shown)
    split = time_split_figure([(run.title, round_split(run.spans, run.rounds), _staleness(run.spans)) for run in shown])
    return Clock(timelines, split, tuple(notes))


def _aggregations(rounds: pd.DataFrame) -> np.ndarray:
    return pd.to_numeric(rounds["sim_time"], errors="coerce").to_numpy(dtype=float)


def _end(run: _Run) -> float:
    """The last moment of the run on the clock: its last task's end or aggregation."""
    times = np.concatenate([run.spans["end"].to_numpy(dtype=float), _aggregations(run.rounds)])
    finite = times[np.isfinite(times)]
    return float(finite.max()) if len(finite) and finite.max() > 0 else 1.0


def _staleness(spans: pd.DataFrame) -> pd.Series:
    return spans.loc[spans["fate"].isin(["applied", "stale-applied"]), "staleness"]
