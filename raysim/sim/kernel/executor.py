"""What the driver asks of whatever runs client work: the ``Executor`` protocol. The runtime
floor implements it (in-process or on Ray actors); the driver cannot tell them apart, except by
speed, and never imports the runtime."""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from raysim.sim.kernel.evaluation import EvalCounts, EvalSlice
from raysim.sim.kernel.tasks import ClientResult, TrainTask


class ClientLost(RuntimeError):
    """A task's work was lost with the worker that ran it (``resources.actor_failure = "drop"``)."""

    def __init__(self, task_id: int, reason: str):
        super().__init__(task_id, reason)
        self.task_id = task_id
        self.reason = reason

    def __str__(self) -> str:
        return f"task {self.task_id} lost: {self.reason}"


class Executor(Protocol):
    def submit(self, version: int, params: np.ndarray, tasks: Sequence[TrainTask], costs: Sequence[float]) -> None:
        """Starts training ``tasks`` from model ``version`` (whose state is ``params``).

        ``costs`` are the tasks' expected work (samples x epochs), used to balance workers.
        Each version's state is shipped once, however many tasks use it.
        """

    def result(self, task_id: int) -> ClientResult:
        """Blocks until the task is done; raises ``ClientError`` if its client failed and
        ``ClientLost`` if its worker died and the failure policy drops its work."""

    def forget(self, task_ids: Sequence[int]) -> None:
        """Drops tasks whose results will never be read (the run ended before they were used)."""

    def evaluate(self, params: np.ndarray, slices: Sequence[EvalSlice]) -> list[EvalCounts]:
        """Scores ``params`` on every slice, spread over the workers; counts in slice order."""

    def evaluate_models(self, models: Sequence[np.ndarray], slices: Sequence[EvalSlice]) -> list[list[EvalCounts]]:
        """Scores each of ``models`` on every slice, the models spread over the workers (one call
        each); per model, counts in slice order."""

    def shutdown(self) -> None:
        """Releases workers and memory."""
