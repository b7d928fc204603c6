"""Task spans: each client task of a run as it sat on the simulated clock, read from
clients.parquet alone (the timeline and the time split draw from these).

A task is dispatched at ``start``, downloads until ``download_end``, computes until
``compute_end`` and uploads (or, on a gossip or hierarchical topology, exchanges with its
neighbours or edge) until ``end``. Three kinds of rows hold the timings:

- star runs (records.py): ``start_time``, ``end_time``, ``download_s``, ``compute_s``, ``upload_s``.
  A task that dropped out or went offline keeps its *planned* end: the row records its fate,
  not the moment it failed.
- Flower runs (flower_grid.py): ``sent_at``, ``arrived_at``, the three durations, and
  ``dropped_at`` for a dropout; an offline node has no durations (a task of no length).
- gossip and hierarchical runs (nodes.py): ``start_time``, ``end_time`` (the round's end),
  ``compute_s``; the rest of the task is the exchange, drawn as its upload, which so includes
  waiting for the slowest neighbour or edge.

Vertical runs record bytes per party and no times: ``has_timings`` is False for them. A received
table is hostile input: timings that are not finite numbers drop their row, never the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Each task's fate, in the order the figures list them; ``fate`` maps a row's status to one.
FATES = ("applied", "stale-applied", "late-dropped", "dropped out", "offline", "not used")
_FATE_OF_STATUS = {"applied": "applied", "replied": "applied", "late": "late-dropped",
                   "dropout": "dropped out", "offline": "offline"}
COLUMNS = ("scenario", "run_id", "round", "client_id", "fate", "staleness",
           "start", "download_end", "compute_end", "end")


def has_timings(clients: pd.DataFrame) -> bool:
    """Whether a run's client rows say when its tasks ran (star, Flower, gossip, hierarchical)."""
    return {"start_time", "end_time"} <= set(clients.columns) or "sent_at" in clients.columns


def task_spans(clients: pd.DataFrame) -> pd.DataFrame:
    """One row per task with a finite start (``COLUMNS``); the phases clipped to [start, end]."""
    if clients.empty or not has_timings(clients):
        return pd.DataFrame(columns=list(COLUMNS))
    flower = "sent_at" in clients.columns and "start_time" not in clients.columns
    start = _numbers(clients, "sent_at" if flower else "start_time")
    download, compute = _numbers(clients, "download_s").fillna(0.0), _numbers(clients, "compute_s").fillna(0.0)
    upload = _numbers(clients, "upload_s").fillna(0.0)
    end = _numbers(clients, "arrived_at" if flower else "end_time")
    if flower and "dropped_at" in clients.columns:
        end = _numbers(clients, "dropped_at").fillna(end)
    end = end.fillna(start + download + compute + upload)  # a Flower dropout without dropped_at, an offline node
    end = np.maximum(end, start)
    download_end = np.minimum(start + download.clip(lower=0), end)
    compute_end = np.minimum(download_end + compute.clip(lower=0), end)
    staleness = _numbers(clients, "staleness").fillna(0.0)
    spans = pd.DataFrame({
        "scenario": clients["scenario"].astype(str) if "scenario" in clients else "",
        "run_id": clients["run_id"].astype(str) if "run_id" in clients else "",
        "round": _numbers(clients, "round"),
        "client_id": _numbers(clients, "client_id"),
        "fate": [fate(s, a) for s, a in zip(clients["status"].astype(str), staleness)],
        "staleness": staleness,
        "start": start, "download_end": download_end, "compute_end": compute_end, "end": end,
    })
    finite = np.isfinite(spans[["round", "client_id", "start", "download_end", "compute_end", "end"]]).all(axis=1)
    return spans[finite].reset_index(drop=True)


def fate(status: str, staleness: float) -> str:
    """A row's status as one of ``FATES``: an applied update trained on an older model than the
    one it was applied to is stale-applied; excess, straggler, rejected, discarded, suppressed,
    lost and unfinished tasks delivered nothing the server used."""
    named = _FATE_OF_STATUS.get(status, "not used")
    return "stale-applied" if named == "applied" and staleness > 0 else named


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats (NaN where missing, not a number or infinite)."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    try:
        values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    except (TypeError, ValueError):  # a foreign table's cells (lists, mappings) are no times
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return values.where(np.isfinite(values))
