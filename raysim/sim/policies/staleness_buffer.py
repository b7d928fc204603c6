"""Arrived updates waiting for the next server step, discounted by their staleness on release."""

from __future__ import annotations

from raysim.algorithms.staleness import StalenessWeight
from raysim.sim.policies.base import Aggregate, TaskInfo


class StalenessBuffer:
    def __init__(self, weight: StalenessWeight):
        self.weight = weight
        self.tasks: list[TaskInfo] = []

    def add(self, task: TaskInfo) -> None:
        self.tasks.append(task)

    def __len__(self) -> int:
        return len(self.tasks)

    def flush(self, version: int) -> Aggregate:
        """An Aggregate of everything buffered; staleness = version now - version started from."""
        tasks, self.tasks = self.tasks, []
        return Aggregate(
            task_ids=tuple(t.task_id for t in tasks),
            scales=tuple(self.weight(version - t.base_version) for t in tasks),
        )
