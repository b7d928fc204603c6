"""One server step once a round's updates are gathered: the reducer, the server optimizer, and
the check that the new model is still a model.

Without privacy the strategy reduces the updates itself (mean, FedNova or a robust rule); with
privacy the privacy stage does (DP-FedAvg's clip-noise-average, or a secure sum), which is why
the loader accepts DP only with the plain mean (combinations.py). Either way a step that
produces a non-finite model ends the run with :class:`RunDiverged`: an overflow to inf would
otherwise freeze every later round at NaN without a word.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from raysim.algorithms.strategy import ServerState, Strategy, Update
from raysim.privacy.stage import PrivacyStage, PrivateUpdate


class RunDiverged(RuntimeError):
    """The global model became non-finite after a server step; the run cannot go on."""

    def __init__(self, round_number: int, count: int, first: int):
        super().__init__(
            f"round {round_number}: the new global model has {count} non-finite values (first at index {first}); "
            "the run diverged: lower client.lr or server.lr, or bound the updates (privacy.dp clipping, a robust "
            "server.aggregator)"
        )
        self.round_number, self.count, self.first = round_number, count, first

    def __reduce__(self):  # crosses from the driver actor to the caller intact
        return type(self), (self.round_number, self.count, self.first)


def check_finite(params: np.ndarray, round_number: int) -> None:
    """Raises RunDiverged if any parameter is NaN or infinite."""
    bad = np.flatnonzero(~np.isfinite(params))
    if bad.size:
        raise RunDiverged(round_number, int(bad.size), int(bad[0]))


def server_step(strategy: Strategy, state: ServerState, updates: Sequence[Update], *, privacy: PrivacyStage | None,
                round_number: int, dropped: Sequence[int]) -> tuple[ServerState, dict]:
    """The next server state and the step's metrics; ``dropped`` are the round's clients that
    went away after the secure-aggregation key exchange."""
    if privacy is None:
        state, metrics = strategy.aggregate(state, updates)
    else:
        state, metrics = _private_step(strategy, privacy, state, updates, round_number=round_number, dropped=dropped)
    check_finite(state.params, round_number)
    return state, metrics


def _private_step(strategy: Strategy, privacy: PrivacyStage, state: ServerState, updates: Sequence[Update], *,
                  round_number: int, dropped: Sequence[int]) -> tuple[ServerState, dict]:
    """Clip, noise, securely sum and account (privacy/stage.py), then the server optimizer."""
    if not updates:
        return strategy.step(state, None)
    ordered = sorted(updates, key=lambda u: u.client_id)
    weights = strategy.weights(ordered)
    delta, privacy_metrics = privacy.reduce(
        [PrivateUpdate(u.client_id, np.asarray(u.delta, dtype=np.float64) * u.scale, w) for u, w in zip(ordered, weights)],
        round_number=round_number, dropped=dropped,
    )
    state, metrics = strategy.step(state, delta)
    return state, {**metrics, **privacy_metrics}
