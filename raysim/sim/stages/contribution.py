"""The contribution stage: valuing each server step's participants (the round's game), and the
contributions table.

A server step is a game. Its players are the clients whose updates the step applied; its
utility v(S) is the validation score (accuracy, or minus the mean loss) of the model the step
would have produced from the updates of S alone, rebuilt with the round's own aggregation
code (``Strategy.aggregate`` from the step's starting state: the same weighting, reducer and
server optimizer, its state included), never by retraining. v(empty) is the starting model's
score. Rebuilt models are scored on the client workers, a batch of coalitions in one call per
worker (``Executor.evaluate_models``), on the validation rows the server holds (a share of the
training set no client trains on, see scenario/preparation.py).

What a contribution means when updates are stale: the value of an update *as the server applied
it at that step*: rebased to the current model and discounted by the policy's staleness scale
(FedAsync, FedBuff, hybrid), against the model of that step. A FedBuff step's players are the
buffer's clients at that step; a FedAsync step has one player, whose value is v({i}) - v(empty).
Clients that dropped out, were late or straggled are not players of that step: their value that
round is absent (``fedsv`` records a 0 for every client not in the step, with ``stopped =
"absent"``).

Each method has its own budget (``max_evaluations``) and call count; the scores are shared
across the methods of one step (cached per coalition), so a second method re-scores nothing.

A step a method did not value (GTG's round truncation, or a budget that cut every order short)
still has rows, value 0 and ``valued = False``; the values handed on to incentives leave those
clients out, so a round nobody valued is no outcome for their reputation or earnings.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

import numpy as np

from raysim.algorithms.strategy import ServerState, Strategy, Update
from raysim.contribution import ContributionConfig, Utility, value_round
from raysim.contribution.utility import Coalition
from raysim.seeding import Stream, rng
from raysim.sim.kernel.evaluation import EVAL_CHUNK, EvalSlice, summarise
from raysim.sim.stages.stage import Stage, StageContext, Step, StepOutput

if TYPE_CHECKING:
    from raysim.models.learning_task import LearningTask
    from raysim.sim.kernel.executor import Executor


class RoundGame:
    """One server step's coalition models and their scores, cached by coalition."""

    def __init__(self, strategy: Strategy, start: ServerState, updates: Sequence[Update], *, executor: Executor,
                 slices: list[EvalSlice], metric: str, task: LearningTask):
        self.by_client = {u.client_id: u for u in updates}
        if len(self.by_client) != len(updates):
            raise ValueError("a server step applied two updates of one client: its players are not distinct")
        self.strategy, self.start, self.executor, self.slices, self.metric = strategy, start, executor, slices, metric
        self.task = task
        self.scored: dict[Coalition, float] = {}

    @property
    def players(self) -> list[int]:
        return sorted(self.by_client)

    def model(self, coalition: Coalition) -> np.ndarray:
        """The step's model from the coalition's updates alone, by the round's own rule."""
        params, _, _ = self.strategy.aggregate(self.start.params, self.start.strategy_state,
                                               [self.by_client[c] for c in coalition])
        return params

    def evaluate(self, coalitions: Sequence[Coalition]) -> list[float]:
        """Scores of the coalitions, the unscored ones rebuilt and scored in one batch."""
        missing = list(dict.fromkeys(c for c in coalitions if c not in self.scored))
        if missing:
            counts = self.executor.evaluate_models([self.model(c) for c in missing], self.slices)
            for coalition, scored in zip(missing, counts):
                scores = summarise(scored, self.task)
                self.scored[coalition] = scores["accuracy"] if self.metric == "accuracy" else -scores["loss"]
        return [self.scored[c] for c in coalitions]


def validation_slices(indices: np.ndarray) -> list[EvalSlice]:
    """The server's validation rows (of the training set) in fixed chunks, as the test set is cut."""
    return [EvalSlice("train", indices[start:start + EVAL_CHUNK]) for start in range(0, len(indices), EVAL_CHUNK)]


class ContributionStage(Stage):
    """The run's contributions so far: each (method, client)'s cumulative value. Each step's
    values are handed on (``Step.values``) to the stages after it: incentives pay by them."""

    key = "contribution"

    def __init__(self, config: ContributionConfig, *, validation: np.ndarray, population: int, seed: int,
                 task: LearningTask):
        self.config, self.population, self.seed, self.task = config, population, seed, task
        self.validation = validation
        self.cumulative: dict[tuple[str, int], float] = {}

    def value(self, round_number: int, strategy: Strategy, start: ServerState, updates: Sequence[Update],
              executor: Executor) -> tuple[list[dict], dict[str, dict[int, float]]]:
        """The step's contribution rows, and each method's values by client, of the clients it
        valued only (fedsv's absent clients and unvalued rounds are in the rows, not here)."""
        game = RoundGame(strategy, start, updates, executor=executor, slices=validation_slices(self.validation),
                         metric=self.config.metric, task=self.task)
        rows, values = [], {}
        for index, method in enumerate(self.config.methods):
            started = time.perf_counter()
            utility = Utility(game.evaluate, max_evaluations=self.config.max_evaluations)
            draw = rng(self.seed, Stream.CONTRIBUTION, round_number, index)
            estimate = value_round(method, game.players, utility, draw, self.config) if game.players else None
            seconds = time.perf_counter() - started
            found = dict(estimate.values) if estimate else {}
            stopped = {c: estimate.stopped for c in found}
            values[method] = dict(found) if estimate and estimate.valued else {}
            if method == "fedsv":  # every client not in the step: 0 this round, and why
                for client in range(self.population):
                    if client not in found:
                        found[client], stopped[client] = 0.0, "absent"
            for client in sorted(found):
                key = (method, client)
                self.cumulative[key] = self.cumulative.get(key, 0.0) + found[client]
                rows.append({"round": round_number, "client_id": client, "method": method, "value": found[client],
                             "cumulative": self.cumulative[key], "utility_calls": utility.calls,
                             "seconds": seconds, "permutations": estimate.permutations if estimate else 0,
                             "stopped": stopped[client], "valued": client in values[method]})
        return rows, values

    def after_step(self, step: Step, context: StageContext) -> StepOutput:
        rows, values = self.value(context.round, step.strategy, step.start, step.updates, context.evaluator)
        step.values.update(values)
        return StepOutput(tables={"contributions": rows})
