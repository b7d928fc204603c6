"""The evaluation stage: the clients' own held-out examples scored after a round.

With ``[evaluation]`` (``clients = "all"`` or ``"sampled"``): every ``evaluation.every`` rounds
and at the last one, the global model (and, with fine-tuning, each client's adapted model) on
each scored client's held-out slice, its distribution on the round row. Without it, with personal
layers' held-out slices: the task's metrics of the global and the personalised model per client
on evaluated rounds (``run.eval_every``), their sample-weighted means of the primary metric on
the round row (``holdout_{global,personal}_<metric>``)."""

from __future__ import annotations

import numpy as np

from raysim.models.learning_task import primary
from raysim.sim.kernel.evaluation import EvaluationConfig, evaluate_clients, holdout_rows, holdout_slices
from raysim.sim.stages.stage import Stage, StageContext
from raysim.sim.kernel.tasks import ClientIndices


class EvaluationStage(Stage):
    key = "evaluation"
    REBUILT = ("holdout",)  # the clients' held-out rows: data from the scenario, not the stage's state

    def __init__(self, config: EvaluationConfig, holdout: ClientIndices | None, *, eval_every: int):
        self.config, self.holdout, self.eval_every = config, holdout, eval_every

    def evaluate(self, round_row: dict, context: StageContext) -> list[dict]:
        if self.config.active:
            return self._clients(round_row, context)
        return self._holdout(round_row, context)

    def _clients(self, round_row: dict, context: StageContext) -> list[dict]:
        if context.round % self.config.every and not context.finished:
            return []
        rows, spread = evaluate_clients(self.config, self.holdout, context.clients.head, context.evaluator.evaluate,
                                        context.params, seed=context.seed, round_number=context.round,
                                        task=context.task)
        round_row.update(spread)
        return rows

    def _holdout(self, round_row: dict, context: StageContext) -> list[dict]:
        if self.holdout is None or not (context.round % self.eval_every == 0 or context.finished):
            return []
        owners, slices = holdout_slices(self.holdout, context.clients.head)
        eval_rows = holdout_rows(owners, slices, context.evaluator.evaluate(context.params, slices), context.round,
                                 context.task)
        if eval_rows:
            held = np.array([r["samples"] for r in eval_rows], dtype=float)
            metric, _ = primary(context.task)
            for kind in ("global", "personal"):
                values = np.array([r[f"{kind}_{metric}"] for r in eval_rows])
                round_row[f"holdout_{kind}_{metric}"] = float((values * held).sum() / held.sum())
        return eval_rows
