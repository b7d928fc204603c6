from dataclasses import dataclass
from typing import ClassVar

from raysim.sim.policies import Aggregate, Arrival, Dispatch, Failure


@dataclass(frozen=True, kw_only=True)
class Sequential:
    """One client at a time, its update applied on arrival; ``[policy]``'s other keys are fields."""

    kind: ClassVar[str] = "sequential"
    first: int = 1  # clients dispatched at the start

    def build(self) -> "SequentialRounds":
        return SequentialRounds(self.first)


class SequentialRounds:
    def __init__(self, first: int):
        self.first = first

    def start(self, view) -> list:
        return [Dispatch(count=self.first)]

    def on_event(self, event, view) -> list:
        if isinstance(event, Arrival):
            return [Aggregate((event.task.task_id,)), Dispatch(count=1)]
        if isinstance(event, Failure):
            return [Dispatch(count=1)]
        return []  # Dispatched, Timer: nothing to do
