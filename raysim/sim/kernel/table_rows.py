"""The one builder of rounds.parquet and clients.parquet rows, for every kind of run.

The star driver (records.py), the gossip and hierarchy loop (nodes.py), the vertical run
(vertical.py) and the Flower run (runs/flower.py) each hand :func:`round_row` and
:func:`client_row` the facts they have by name, so a column the simulator adds here is written
once and appears in every kind of run. A fact a kind does not have is left out (``None``, or an
empty mapping) and its column is absent from that kind's table, as before the builder existed.

Columns come in one order: the common ones in the order of the keyword arguments below, each
followed by the kind's own columns anchored to it (``after={"status": {...}}``), then the
kind's ``extra`` columns (which, like a dict literal's later keys, may also replace a common
column's value in place). Keeping each kind's column order is what keeps its tables' hashes
(tools/table_hashes.py) equal across refactors.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

Columns = Mapping[str, Any]
NO_COLUMNS: Mapping[str, Columns] = {}


def round_row(*, round: int, sim_time: float, wall_time: float, version: int | None = None,
              round_wall_s: float | None = None, clients: int | None = None, samples: int | None = None,
              evaluation: Columns = NO_COLUMNS, train_loss: float | None = None, bytes_down: int | None = None,
              bytes_up: int | None = None, mean_staleness: float | None = None, messages_saved: int | None = None,
              statuses: Sequence[str] = (), failures: Sequence[str] = (),
              after: Mapping[str, Columns] = NO_COLUMNS, extra: Columns = NO_COLUMNS) -> dict[str, Any]:
    """A row of rounds.parquet. ``evaluation``: the model's scores, already named as columns
    (``test_<metric>``; a vertical run's ``train_<metric>`` too); ``failures``: the statuses counted among the round's client
    ``statuses``, one ``failed_<status>`` column each."""
    return _arrange([
        ("round", {"round": round}),
        ("version", _given(version=version)),
        ("sim_time", {"sim_time": sim_time}),
        ("wall_time", {"wall_time": wall_time}),
        ("round_wall_s", _given(round_wall_s=round_wall_s)),
        ("clients", _given(clients=clients)),
        ("samples", _given(samples=samples)),
        ("evaluation", evaluation),
        ("train_loss", _given(train_loss=train_loss)),
        ("bytes_down", _given(bytes_down=bytes_down)),
        ("bytes_up", _given(bytes_up=bytes_up)),
        ("mean_staleness", _given(mean_staleness=mean_staleness)),
        ("messages_saved", _given(messages_saved=messages_saved)),
        ("failures", {f"failed_{reason}": sum(s == reason for s in statuses) for reason in failures}),
    ], after, extra)


def client_row(*, round: int, task_id: int | None = None, client_id: int | None = None, status: str | None = None,
               staleness: int | None = None, samples: int | None = None, epochs: int | None = None,
               steps: int | None = None, train_loss: float | None = None, start_time: float | None = None,
               end_time: float | None = None, download_s: float | None = None, compute_s: float | None = None,
               upload_s: float | None = None, wall_train_s: float | None = None, bytes_down: int | None = None,
               bytes_up: int | None = None, after: Mapping[str, Columns] = NO_COLUMNS,
               extra: Columns = NO_COLUMNS) -> dict[str, Any]:
    """A row of clients.parquet: one client's task (or, in a Flower run, one message; in a
    vertical run, one party) in a round, with its simulated timing and traffic."""
    return _arrange([(name, _given(**{name: value})) for name, value in (
        ("round", round), ("task_id", task_id), ("client_id", client_id), ("status", status),
        ("staleness", staleness), ("samples", samples), ("epochs", epochs), ("steps", steps),
        ("train_loss", train_loss), ("start_time", start_time), ("end_time", end_time),
        ("download_s", download_s), ("compute_s", compute_s), ("upload_s", upload_s),
        ("wall_train_s", wall_train_s), ("bytes_down", bytes_down), ("bytes_up", bytes_up))], after, extra)


def total(rows: Sequence[Mapping[str, Any]], column: str) -> int:
    """The sum of an integer column over client rows (a round's bytes)."""
    return int(sum(r[column] for r in rows))


def _given(**columns: Any) -> dict[str, Any]:
    return {name: value for name, value in columns.items() if value is not None}


def _arrange(sections: list[tuple[str, Columns]], after: Mapping[str, Columns], extra: Columns) -> dict[str, Any]:
    unknown = set(after) - {name for name, _ in sections}
    if unknown:  # a caller's typo would silently move its columns to the end
        raise ValueError(f"no common column {sorted(unknown)} to place columns after; "
                         f"one of {[name for name, _ in sections]}")
    row: dict[str, Any] = {}
    for name, columns in sections:
        row.update(columns)
        row.update(after.get(name, {}))
    row.update(extra)
    return row
