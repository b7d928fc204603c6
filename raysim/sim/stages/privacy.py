"""The privacy budget stage: a server step that would take the run's privacy loss past
``privacy.epsilon`` is not taken, and the run stops there (privacy/stage.py accounts it). The
step's reduction itself, clip-noise-average or a secure sum, wraps the strategy (server_step.py)."""

from __future__ import annotations

from typing import Sequence

from raysim.privacy.stage import PrivacyStage
from raysim.sim.stages.stage import Stage


class PrivacyBudgetStage(Stage):
    key = "privacy_budget"

    def __init__(self, privacy: PrivacyStage):
        self.privacy = privacy

    def allows_step(self, clients: Sequence[int]) -> bool:
        return not self.privacy.would_exceed_budget(list(clients))
