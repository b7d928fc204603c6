"""The attack stage: the attacking clients' updates tampered with on their way to the server.

A data attack (label flipping) happens on the workers (``TrainTask.flipped_labels``); an update
attack (sign flipping, scaling, noise, a free rider's zero update) happens here, drawn from
(seed, task id), so it does not depend on which worker trained the client
(algorithms/attacks.py has the attacks)."""

from __future__ import annotations

from typing import Any

import numpy as np

from raysim.seeding import Stream, rng
from raysim.sim.stages.stage import Stage, StageContext


class AttackStage(Stage):
    key = "attack"

    def __init__(self, attack: Any, attackers: frozenset[int]):
        self.attack, self.attackers = attack, attackers

    def inbound(self, task: Any, delta: np.ndarray, context: StageContext) -> np.ndarray:
        if task.info.client_id in self.attackers and self.attack.target == "update":
            return self.attack(delta, rng=rng(context.seed, Stream.ATTACK, task.info.task_id))
        return delta
