"""The rows a run records: one per round (rounds.parquet) and one per client task
(clients.parquet), built from the driver's task table and the server step's metrics.

``Recording`` is a part of ``Driver`` (driver.py), kept apart so the tables' columns read alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from raysim.algorithms.strategy import Update
from raysim.sim import table_rows
from raysim.sim.dispatch import Task
from raysim.sim.evaluation import summarise, test_columns


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


class Recording:
    """Round and client rows (see the module's docstring)."""

    def _round_row(self, updates: list[Update], client_rows: list[dict], metrics: dict) -> dict:
        scored = self.executor.evaluate(self.state.params, self.test_slices) if self._evaluating() else []
        wall = time.perf_counter()
        samples = sum(u.num_samples for u in updates)
        applied = [r for r in client_rows if r["status"] == "applied"]
        row = table_rows.round_row(
            round=self.round, version=self.state.version,
            sim_time=self.clock.now + metrics.get("protocol_sim_s", 0.0),  # the step's end
            wall_time=wall - self._run_started_wall, round_wall_s=wall - self._round_started_wall,
            clients=len(updates), samples=samples, evaluation=test_columns(summarise(scored, self.task)),
            train_loss=(sum(r["train_loss"] * r["samples"] for r in applied) / samples) if samples else float("nan"),
            bytes_down=table_rows.total(client_rows, "bytes_down"), bytes_up=table_rows.total(client_rows, "bytes_up"),
            mean_staleness=float(np.mean([r["staleness"] for r in applied])) if applied else float("nan"),
            messages_saved=self._messages_saved, statuses=[r["status"] for r in client_rows], failures=FAILURES,
            extra={**self._compression_columns(client_rows), **self._network_columns(), **metrics})
        self._round_started_wall = wall
        self._messages_saved = 0
        return row

    def _client_row(self, task: Task, *, applied_round: int | None, staleness: int | None) -> dict:
        info = task.info
        delivered = task.status in ("applied", "rejected")
        return table_rows.client_row(
            round=applied_round if applied_round is not None else self.round + 1,
            task_id=info.task_id, client_id=info.client_id, status=task.status,
            staleness=staleness if staleness is not None else -1, samples=task.samples, epochs=info.epochs,
            steps=task.result.get("steps", 0), train_loss=task.result.get("train_loss", float("nan")),
            start_time=info.start, end_time=info.end, download_s=task.download_s, compute_s=task.compute_s,
            upload_s=task.upload_s, wall_train_s=task.result.get("wall_train_s", float("nan")),
            bytes_down=0 if task.continued else self.download_bytes, bytes_up=self.upload_bytes if delivered else 0,
            after={"round": {"rejected_because": task.result.get("rejected_because", "")},
                   "status": {"base_version": info.base_version},
                   "epochs": {"straggler": info.epochs < self.schedule.epochs,  # partial work accepted
                              "attacker": info.client_id in self.attackers}},
            extra={name: value for name, value in task.result.items() if name.startswith("metric_")})

    def _compression_columns(self, client_rows: list[dict]) -> dict:
        """With compression: how many times fewer bytes went up than dense float32 updates would
        have taken, both counted as payload (compression/codec.py): fp32 gives exactly 1.0."""
        if self.channel is None or self.channel.uplink is None:
            return {}
        sent = sum(r["bytes_up"] for r in client_rows)
        dense = self.exchange_bytes * sum(r["bytes_up"] > 0 for r in client_rows)
        return {"compression_ratio": dense / sent if sent else float("nan")}


    def _network_columns(self) -> dict:
        """With a broker or ledger: the messages and bytes the network carried so far."""
        if self.links is None:
            return {}
        messages, nbytes = self.links.totals()
        return {"network_messages_total": messages, "network_bytes_total": nbytes}

    def _network_tables(self) -> dict:
        tables = {}
        if self.links is not None:
            tables["nodes"] = self.links.node_rows()
        if self.chain is not None:
            tables["ledger"] = self.chain.to_json()
        return tables

    def _message_rows(self) -> dict:
        """With ``network.log_messages``: the messages sent since the last report."""
        messages = self.links.new_messages(self.round) if self.links is not None else []
        return {"messages": messages} if messages else {}
