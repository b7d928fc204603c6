"""The ledger's stages (``network.topology = "ledger"``): the chain, which appends a block for
every server step and holds the server until it is mined (sim/stages/chain.py), and, with
``consensus = "committee"``, the committee's vote on the step's updates before it (BFLC,
arXiv:2004.00773). Both share the run's one :class:`Chain`."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from raysim.algorithms.strategy import Update
from raysim.network.ledger import committee_accept, score_updates
from raysim.sim.stages.chain import Chain
from raysim.sim.kernel.evaluation import central_slices, summarise, utility
from raysim.sim.stages.stage import Stage, StageContext, Step, StepOutput


class ChainStage(Stage):
    key = "chain"

    def __init__(self, chain: Chain):
        self.chain = chain

    def after_step(self, step: Step, context: StageContext) -> StepOutput:
        """The block of the step's updates, mined once the step's own protocol is done."""
        block_s, columns = self.chain.append([u.delta for u in step.updates], context.now + step.busy_s)
        return StepOutput(busy_s=block_s, columns=columns)

    def network(self, round_number: int) -> dict[str, Any]:
        return {"ledger": self.chain.to_json()}


class CommitteeStage(Stage):
    """Each of the round's members scores every update by the task's primary metric
    (``utility``: accuracy for classification) of the model it would give on the member's own
    validation slice (a fixed chunk of the test set); the ``reject`` updates of lowest median
    score are dropped (their tasks marked rejected) and the rest aggregated and committed."""

    key = "committee"

    def __init__(self, chain: Chain, *, test_size: int):
        self.chain, self.test_size = chain, test_size

    def admit(self, updates: list[Update], tasks: Mapping[int, Any], context: StageContext) -> list[Update]:
        if len(updates) < 2:
            return updates
        chunks = central_slices(self.test_size)

        def score(member: int, delta: np.ndarray) -> float:
            candidate = (context.params.astype(np.float64) + delta).astype(context.params.dtype)
            scored = context.evaluator.evaluate(candidate, [chunks[member % len(chunks)]])
            return utility(summarise(scored, context.task), context.task)

        scores = score_updates(self.chain.members(context.round + 1), [u.delta for u in updates], score)
        kept = set(committee_accept(scores, min(self.chain.config.reject, len(updates) - 1)).tolist())
        for index, update in enumerate(updates):
            if index not in kept:
                tasks[update.client_id].status = "rejected"
                tasks[update.client_id].result["rejected_because"] = "committee"
        return [u for i, u in enumerate(updates) if i in kept]
