"""The metric a run is judged by, so that every summary, comparison and figure means one thing.

A run's learning task (``[task] kind``, models/learning_task.py) names its metrics, the primary
one first, and which are lower-is-better; the run folder records them in ``task.json`` when it
starts (a run of an older raysim, without the file, is a classification run). The round table's
column of a metric is ``test_<name>``; "best" and "reaching a target" follow its direction (the
least MSE or perplexity, the most accuracy), and summaries name it (``final_mse``, never a
``final_accuracy`` holding an MSE).

``task.json`` is input from someone else when a results folder is shared: it is read as JSON
and checked (names are identifiers, the direction a list of them); nothing in it is imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raysim.files import atomic_write
from raysim.models.learning_task import primary

TASK_FILE = "task.json"


@dataclass(frozen=True)
class Metric:
    """A metric by ``name`` (the round table's ``test_<name>``) and its direction."""

    name: str = "accuracy"
    lower_is_better: bool = False

    @property
    def column(self) -> str:
        return f"test_{self.name}"

    @property
    def label(self) -> str:
        return f"test {self.name}" + (" (lower is better)" if self.lower_is_better else "")

    def best_so_far(self, values: np.ndarray) -> np.ndarray:
        return (np.minimum if self.lower_is_better else np.maximum).accumulate(values)

    def best(self, values: Any) -> float:
        values = np.asarray(values, dtype=float)
        return float(values.min() if self.lower_is_better else values.max())

    def reaches(self, values: np.ndarray, target: float) -> np.ndarray:
        return values <= target if self.lower_is_better else values >= target


@dataclass(frozen=True)
class TaskMetrics:
    """What a run's task reports: ``metrics`` (the primary one first) and ``lower_is_better``."""

    kind: str = "classification"
    metrics: tuple[str, ...] = ("accuracy",)
    lower_is_better: frozenset[str] = frozenset()

    @classmethod
    def of(cls, kind: str, task: Any) -> TaskMetrics:
        return cls(kind, tuple(task.metrics), frozenset(task.lower_is_better))

    @property
    def primary(self) -> Metric:
        return Metric(*primary(self))


def write_task(run_dir: Path, task: TaskMetrics) -> None:
    atomic_write(run_dir / TASK_FILE, json.dumps({"kind": task.kind, "metrics": list(task.metrics),
                                                  "lower_is_better": sorted(task.lower_is_better)}, indent=2))


def read_task(run_dir: Path) -> TaskMetrics:
    """The run's task metrics (classification's when the folder predates ``task.json``);
    ValueError naming the file when it is not one raysim wrote."""
    path = run_dir / TASK_FILE
    if not path.is_file():
        return TaskMetrics()
    try:
        table = json.loads(path.read_text(encoding="utf-8")) if path.stat().st_size < 1 << 16 else None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        table = None
    metrics = table.get("metrics") if isinstance(table, dict) else None
    lower = table.get("lower_is_better") if isinstance(table, dict) else None
    if not (isinstance(metrics, list) and metrics and all(isinstance(m, str) and m.isidentifier() for m in metrics)
            and isinstance(lower, list) and set(lower) <= set(metrics) and isinstance(table.get("kind"), str)):
        raise ValueError(f"{path} is not a raysim task file (it needs 'kind', 'metrics', a list of names, and "
                         "'lower_is_better', some of them); the file is damaged or foreign")
    return TaskMetrics(table["kind"], tuple(metrics), frozenset(lower))
