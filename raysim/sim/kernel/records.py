"""The rows a star run records: one per round (rounds.parquet) and one per client task
(clients.parquet), from the kernel's task table and the server step's metrics, through the one
row builder every kind of run uses (table_rows.py). A stage's columns join them as the stage
gives them (``Stage.round_columns``, ``Stage.client_columns``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from raysim.algorithms.strategy import Update
from raysim.sim.kernel import table_rows
from raysim.sim.cost.payload import Traffic
from raysim.sim.kernel.dispatch import Task


@dataclass(frozen=True)
class RoundReport:
    """One aggregation: a row for rounds.parquet, the client rows decided since the last one,
    per-client evaluations (evaluation.parquet) when clients hold out data, the rows of further
    tables (contributions.parquet, incentives.parquet when the run values clients; with
    ``network.log_messages`` messages.parquet, the messages sent since the last report), and with a
    broker, ledger, gossip or hierarchical ``[network]`` its ``network`` state: ``nodes`` (traffic
    per node so far, network.parquet) and ``ledger`` (the chain, ledger.json); on a round whose
    global model is kept (``[run] save_model_every``) that ``model``, by entry name (the
    model after this round, which a later round of the same ``advance`` would have replaced)."""

    round_row: dict
    client_rows: list[dict]
    eval_rows: list[dict] = field(default_factory=list)
    tables: dict[str, list[dict]] = field(default_factory=dict)  # contributions, incentives: name -> rows
    network: dict = field(default_factory=dict)  # nodes, ledger: rewritten each round
    model: dict[str, np.ndarray] | None = None


# The statuses of a task that did not reach the model, one failed_<status> column each.
FAILURES = ("dropout", "offline", "late", "excess", "straggler", "rejected", "lost")


def client_row(task: Task, *, round_number: int, staleness: int | None, traffic: Traffic, full_epochs: int,
               attacker: bool, extra: Mapping[str, Any]) -> dict:
    """A task's row: ``round_number`` is the round it was applied in, or the round in progress
    for a task that ended otherwise; ``staleness`` None when it was not applied."""
    info = task.info
    delivered = task.status in ("applied", "rejected")
    return table_rows.client_row(
        round=round_number, task_id=info.task_id, client_id=info.client_id, status=task.status,
        staleness=staleness if staleness is not None else -1, samples=task.samples, epochs=info.epochs,
        steps=task.result.get("steps", 0), train_loss=task.result.get("train_loss", float("nan")),
        start_time=info.start, end_time=info.end, download_s=task.download_s, compute_s=task.compute_s,
        upload_s=task.upload_s, wall_train_s=task.result.get("wall_train_s", float("nan")),
        bytes_down=0 if task.continued else traffic.download_bytes, bytes_up=traffic.upload_bytes if delivered else 0,
        after={"round": {"rejected_because": task.result.get("rejected_because", "")},
               "status": {"base_version": info.base_version},
               "epochs": {"straggler": info.epochs < full_epochs,  # partial work accepted
                          "attacker": attacker}},
        extra={**{name: value for name, value in task.result.items() if name.startswith("metric_")}, **extra})


def round_row(*, round_number: int, version: int, sim_time: float, wall_time: float, round_wall_s: float,
              updates: Sequence[Update], client_rows: Sequence[Mapping[str, Any]], evaluation: Mapping[str, float],
              messages_saved: int, extra: Mapping[str, Any]) -> dict:
    """A server step's row: its applied updates, the client rows decided since the last step,
    the global model's test scores and ``extra``: the stages' columns, then the step's metrics."""
    samples = sum(u.num_samples for u in updates)
    applied = [r for r in client_rows if r["status"] == "applied"]
    return table_rows.round_row(
        round=round_number, version=version, sim_time=sim_time, wall_time=wall_time, round_wall_s=round_wall_s,
        clients=len(updates), samples=samples, evaluation=evaluation,
        train_loss=(sum(r["train_loss"] * r["samples"] for r in applied) / samples) if samples else float("nan"),
        bytes_down=table_rows.total(client_rows, "bytes_down"), bytes_up=table_rows.total(client_rows, "bytes_up"),
        mean_staleness=float(np.mean([r["staleness"] for r in applied])) if applied else float("nan"),
        messages_saved=messages_saved, statuses=[r["status"] for r in client_rows], failures=FAILURES, extra=extra)
