"""Optional experiment-tracking sinks, TensorBoard and MLflow, fed the round rows as they are
written to rounds.parquet (``raysim run --track ...``; off by default).

The Parquet tables stay the record; a sink is a view for the tools people already use, fed
the same rows, so each metric's (round, value) pairs in a sink are exactly the finite values of
that column in rounds.parquet (a NaN, e.g. accuracy in a round that was not evaluated, is left
out: neither tool has a "no value"). Both write local files only: TensorBoard event files, and
MLflow's file store (no server, no database).
"""

from __future__ import annotations

import importlib.util
import math
import numbers
import os
import time
from pathlib import Path
from typing import Any, Protocol

from raysim.inputs import ConfigError

SINKS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # sink -> the package it needs


class Sink(Protocol):
    def write(self, row: dict) -> None: ...

    def close(self) -> None: ...


def metrics_of(row: dict) -> dict[str, float]:
    """A round row's finite numbers, keyed by column (``round`` is the step, not a metric)."""
    return {key: float(value) for key, value in row.items()
            if key != "round" and isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value)}


def check_sinks(names: list[str]) -> None:
    """Refuses an unknown sink or one whose package is missing, before the run starts."""
    for name in names:
        if name not in SINKS:
            raise ConfigError(f"--track {name!r} is unknown; choose from {sorted(SINKS)}")
        if importlib.util.find_spec(SINKS[name]) is None:
            raise ConfigError(f"--track {name} needs the '{SINKS[name]}' package: pip install 'raysim[tracking]'")


class TensorBoardSink:
    """Scalars ``<column>`` at step ``round`` in ``folder`` (``tensorboard --logdir folder``)."""

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(folder))

    def write(self, row: dict) -> None:
        for key, value in metrics_of(row).items():
            self._writer.add_scalar(key, value, global_step=int(row["round"]))

    def close(self) -> None:
        self._writer.close()


class MLflowSink:
    """One MLflow run per raysim run in the file store at ``folder`` (``mlflow ui
    --backend-store-uri file:folder``): the scenario as params, each column a metric by round."""

    def __init__(self, folder: Path, *, experiment: str, run_name: str, params: dict[str, Any]):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 favours a database; a folder suffices
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=folder.absolute().as_uri())
        found = self._client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self._client.create_experiment(experiment)
        self.run_id = self._client.create_run(experiment_id, run_name=run_name).info.run_id
        self._client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def write(self, row: dict) -> None:
        from mlflow.entities import Metric

        stamp, step = int(time.time() * 1000), int(row["round"])
        self._client.log_batch(self.run_id, metrics=[Metric(k, v, stamp, step) for k, v in metrics_of(row).items()])

    def close(self) -> None:
        self._client.set_terminated(self.run_id)


def open_sinks(names: list[str], folder: Path, *, name: str, run_id: str, params: dict[str, Any]) -> list[Sink]:
    """The sinks named, writing under ``folder``: ``tensorboard/<name>/<run_id>``, and in
    ``mlruns`` an MLflow run named ``run_id`` in experiment ``name``. ``run_id`` is the run
    folder's name (``results/<name>/<run_id>``), so a tracked run and its folder match; open the
    sinks once the folder exists (``raysim.api.run``'s ``on_start``)."""
    check_sinks(names)
    made: list[Sink] = []
    for sink in dict.fromkeys(names):
        if sink == "tensorboard":
            made.append(TensorBoardSink(folder / "tensorboard" / name / run_id))
        else:
            made.append(MLflowSink(folder / "mlruns", experiment=name, run_name=run_id, params=params))
    return made


def flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """A nested scenario table as dotted keys (``client.lr``), for MLflow's params."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
