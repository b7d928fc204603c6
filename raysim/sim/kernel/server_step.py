"""One server step once a round's updates are gathered: the reducer, the server optimizer, and
the check that the new model is still a model.

Without privacy the strategy reduces the updates itself (mean, FedNova or a robust rule); with
privacy the privacy stage does (DP-FedAvg's clip-noise-average, or a secure sum), which is why
the loader accepts DP only with the plain mean (combinations.py). Either way a step that
produces a non-finite model ends the run with :class:`RunDiverged`: an overflow to inf would
otherwise freeze every later round at NaN without a word.
"""

from __future__ import annotations

import traceback
from typing import Any, Mapping, Sequence

import numpy as np

from raysim.algorithms.strategy import ServerState, ServerStrategy, Strategy, Update
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


class StrategyError(RuntimeError):
    """A server strategy raised or returned something that is not a server step's result."""

    def __reduce__(self):  # crosses from the driver actor to the caller intact
        return type(self), self.args


def server_step(strategy: ServerStrategy, state: ServerState, updates: Sequence[Update], *,
                privacy: PrivacyStage | None, round_number: int, dropped: Sequence[int]) -> tuple[ServerState, dict]:
    """The next server state and the step's metrics; ``dropped`` are the round's clients that
    went away after the secure-aggregation key exchange."""
    if privacy is None:
        params, inner, metrics = _aggregated(strategy, state, updates, round_number)
    else:
        params, inner, metrics = _private_step(strategy, privacy, state, updates, round_number=round_number,
                                               dropped=dropped)
    check_finite(params, round_number)
    return ServerState(params=params, strategy_state=inner, version=state.version + 1), metrics


def _aggregated(strategy: ServerStrategy, state: ServerState, updates: Sequence[Update],
                round_number: int) -> tuple[np.ndarray, Any, dict]:
    """``strategy.aggregate``, its result checked: (parameters of the model's size and dtype,
    a state, metrics of numbers) or StrategyError naming the strategy and the round."""
    name = f"server.strategy {type(strategy).__module__}:{type(strategy).__qualname__}"
    try:
        result = strategy.aggregate(state.params, state.strategy_state, updates)
    except Exception as exc:
        raise StrategyError(f"round {round_number}: {name} raised {type(exc).__name__}: {exc}\n"
                            f"{traceback.format_exc()}") from None
    if not (isinstance(result, tuple) and len(result) == 3):
        raise StrategyError(f"round {round_number}: {name}.aggregate returned {type(result).__name__}, "
                            "not (params, state, metrics)")
    params, inner, metrics = result
    if not isinstance(params, np.ndarray) or params.shape != state.params.shape or params.dtype != state.params.dtype:
        shown = f"{params.dtype} {params.shape}" if isinstance(params, np.ndarray) else type(params).__name__
        raise StrategyError(f"round {round_number}: {name}.aggregate returned parameters {shown}, not "
                            f"{state.params.dtype} {state.params.shape}")
    if not isinstance(metrics, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (int, float, np.integer, np.floating)) for k, v in metrics.items()):
        raise StrategyError(f"round {round_number}: {name}.aggregate's metrics must map names to numbers")
    return params, inner, {k: float(v) for k, v in metrics.items()}


def _private_step(strategy: Strategy, privacy: PrivacyStage, state: ServerState, updates: Sequence[Update], *,
                  round_number: int, dropped: Sequence[int]) -> tuple[np.ndarray, Any, dict]:
    """Clip, noise, securely sum and account (privacy/stage.py), then the server optimizer (the
    built-in strategy only: combinations.py refuses privacy with any other)."""
    if not updates:
        return strategy.step(state.params, state.strategy_state, None)
    ordered = sorted(updates, key=lambda u: u.client_id)
    weights = strategy.weights(ordered)
    delta, privacy_metrics = privacy.reduce(
        [PrivateUpdate(u.client_id, np.asarray(u.delta, dtype=np.float64) * u.scale, w) for u, w in zip(ordered, weights)],
        round_number=round_number, dropped=dropped,
    )
    params, inner, metrics = strategy.step(state.params, state.strategy_state, delta)
    return params, inner, {**metrics, **privacy_metrics}
