"""In-process executor: the same ``ClientWorker`` code, no Ray; for unit tests and debugging.

Tasks are trained lazily, a whole group (see ``group_tasks``) when the result of any of its
tasks is first asked for, so the floats equal those of the Ray executor.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from raysim.runtime.worker import ClientWorker
from raysim.sim.kernel.evaluation import EvalCounts, EvalSlice
from raysim.sim.kernel.tasks import ClientResult, TrainTask, group_tasks


class LocalExecutor:
    def __init__(self, worker: ClientWorker, *, vectorize: bool = False):
        """``vectorize``: train equal-sized clients as one batch of models (``group_tasks``)."""
        self.worker = worker
        self._vectorize = vectorize
        self._pending: dict[int, tuple[np.ndarray, list[TrainTask]]] = {}
        self._done: dict[int, ClientResult] = {}

    def submit(self, version: int, params: np.ndarray, tasks: Sequence[TrainTask], costs: Sequence[float]) -> None:
        for group in group_tasks(tasks, costs, vectorize=self._vectorize):
            for task in group:
                self._pending[task.task_id] = (params, group)

    def result(self, task_id: int) -> ClientResult:
        if task_id not in self._done:
            params, group = self._pending[task_id]
            for task, result in zip(group, self.worker.train(params, [group])):
                self._pending.pop(task.task_id, None)
                self._done[task.task_id] = result
        return self._done.pop(task_id)

    def forget(self, task_ids: Sequence[int]) -> None:
        for task_id in task_ids:
            self._pending.pop(task_id, None)
            self._done.pop(task_id, None)

    def evaluate(self, params: np.ndarray, slices: Sequence[EvalSlice]) -> list[EvalCounts]:
        return self.worker.evaluate(params, list(slices))

    def evaluate_models(self, models: Sequence[np.ndarray], slices: Sequence[EvalSlice]) -> list[list[EvalCounts]]:
        return self.worker.evaluate_models(list(models), list(slices))

    def shutdown(self) -> None:
        self._pending.clear()
        self._done.clear()
