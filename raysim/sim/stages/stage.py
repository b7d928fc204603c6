"""A stage: one optional feature of a star run, written as the moments of a round it acts on.

The kernel (sim/kernel/driver.py) owns what every run needs: the clock, the policy's events and
actions, the task table, dispatch planning and the server step. Everything optional (an attack,
compression, broker links, a committee, a chain, the privacy budget, valuing and paying clients,
client evaluation) is a stage: an object that overrides only the hooks it acts on, owns its state
(checkpointed with the run, in the stage list) and adds its own columns and tables. The order is
one list, built once by the scenario's composition (``scenario/composition.py``, ``stages``), in
the spirit of optax's ``chain`` and Flower's strategy wrappers; the kernel calls each hook on the
stages in that order. A user's stage is written the same way (docs/architecture.md).

Hooks, in the order a round meets them:

``eligible``     whether an idle online client may be dispatched now (an energy budget)
``choose``       a dispatch's clients, instead of the selection stage (incentives' priced draw)
``timing``       a planned task's simulated timing (broker and ledger links)
``inbound``      each update the server receives, as the server will see it (attack, codec)
``allows_step``  whether the next server step may happen at all (the privacy budget)
``admit``        the updates admitted to the step (a committee's vote)
``after_step``   once the step is taken: simulated time it holds the server, round-row columns,
                 extra tables (chain, contribution, incentives)
``round_columns``  the round row's columns from the round's client rows (compression ratio)
``client_columns`` a client row's own columns, by task (an energy budget's charge)
``evaluate``     after the round row: per-client evaluation rows and their round columns
``network``      state rewritten with each report (a broker's nodes, the ledger)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import numpy as np

from raysim.algorithms.strategy import ServerState, ServerStrategy, Update
from raysim.sim.cost.devices import TaskTiming

if TYPE_CHECKING:
    from raysim.models.learning_task import LearningTask
    from raysim.sim.state.client_state import ClientState
    from raysim.sim.kernel.evaluation import EvalCounts, EvalSlice
    from raysim.sim.selection.protocol import SelectionView


class Evaluator(Protocol):
    """Where models are scored: the workers (the executor, sim/kernel/executor.py), as sums per slice."""

    def evaluate(self, params: np.ndarray, slices: list[EvalSlice]) -> list[EvalCounts]: ...

    def evaluate_models(self, models: list[np.ndarray], slices: list[EvalSlice]) -> list[list[EvalCounts]]: ...


@dataclass(frozen=True)
class StageContext:
    """What a stage is shown of the run at a hook; made afresh by the kernel for each call, so a
    stage keeps no reference to the kernel and a test hands it a small fake.

    ``round``: server steps taken so far (in ``after_step`` and ``evaluate``, this step's
    number); ``params``: the global model now; ``evaluator``: where models are scored;
    ``clients``: the per-client state (heads, error feedback);
    ``finished``: the run ends with this round."""

    round: int
    now: float
    seed: int
    params: np.ndarray
    task: LearningTask
    evaluator: Evaluator
    clients: ClientState | None = None
    finished: bool = False


@dataclass
class Step:
    """One server step as ``after_step`` sees it: the strategy, the state before, the updates
    applied, the state after; ``busy_s``, the simulated seconds the step holds the server so far (a secure
    aggregation's protocol); ``values``, what a valuing stage found of each participant, for the
    stages after it (incentives pay by the contribution stage's values)."""

    strategy: ServerStrategy
    start: ServerState
    state: ServerState
    updates: Sequence[Update]
    busy_s: float = 0.0
    values: dict[str, dict[int, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class StepOutput:
    """What a stage adds to a step: simulated seconds it holds the server for after the step
    (a block being mined), columns for the round row, rows of extra tables by table name."""

    busy_s: float | None = None  # None: the step's protocol_sim_s column is left as it is
    columns: Mapping[str, Any] = field(default_factory=dict)
    tables: Mapping[str, list[dict]] = field(default_factory=dict)


NOTHING = StepOutput()


class Stage:
    """A feature of a run: every hook does nothing until a stage overrides it (the module's
    docstring lists them). ``key`` names the stage in errors and checkpoints."""

    key = "stage"

    def eligible(self, client: int, now: float) -> bool:
        """False keeps an idle, online client out of this dispatch (the selector's
        ``view.available`` says so, and a policy's named clients skip it)."""
        return True

    def choose(self, count: int, view: SelectionView, draw: np.random.Generator) -> list[int] | None:
        """The dispatch's clients, or None to leave the choice to the next stage and finally to
        the selection stage (sim/selection/)."""
        return None

    def timing(self, client: int, timing: TaskTiming, *, download: bool, model_bytes: int,
               update_bytes: int) -> TaskTiming:
        """A planned task's timing as this stage changes it (``download``: the client fetches
        the model; an event-triggered client training on from its own does not)."""
        return timing

    def inbound(self, task: Any, delta: np.ndarray, context: StageContext) -> np.ndarray:
        """An update as the server receives it (``task``: the kernel's Task, sim/kernel/dispatch.py)."""
        return delta

    def allows_step(self, clients: Sequence[int]) -> bool:
        """False stops the run before the step (nothing of it is applied)."""
        return True

    def admit(self, updates: list[Update], tasks: Mapping[int, Any], context: StageContext) -> list[Update]:
        """The updates the step aggregates; a stage that turns one away marks its task
        (``tasks``: client id -> the kernel's Task) rejected, with the reason."""
        return updates

    def after_step(self, step: Step, context: StageContext) -> StepOutput:
        return NOTHING

    def round_columns(self, client_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {}

    def client_columns(self, task: Any) -> dict[str, Any]:
        return {}

    def evaluate(self, round_row: dict, context: StageContext) -> list[dict]:
        """Per-client evaluation rows (evaluation.parquet); may add columns to ``round_row``."""
        return []

    def network(self, round_number: int) -> dict[str, Any]:
        """Network state rewritten with every report (``RoundReport.network``)."""
        return {}
