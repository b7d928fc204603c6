"""A strategy turns one server step's client updates into the next global model.

It is a composition, not a class tower: a weighting (samples, uniform, or a user function), a
reducer (the weighted mean, FedNova's normalised mean, or a robust rule) and a server optimizer
over the reduced delta D_t, treated as a pseudo-gradient (Reddi et al. 2021, arXiv:2003.00295):

- FedAvg (McMahan et al. 2017, arXiv:1602.05629): mean + server SGD with lr 1;
- FedSGD: the same composition fed full-batch gradients (each client takes one step with lr 1,
  so its delta is minus its gradient) and the scenario's server lr;
- FedAvgM / FedAdam / FedYogi / FedAdagrad: mean + ``server.optimizer``;
- FedNova (Wang et al. 2020, arXiv:2007.07481): the normalised mean, with each client's
  ||a_i||_1 from its local step count and the client optimiser;
- robust aggregation (median, trimmed mean, Krum, Multi-Krum): unweighted, see robust.py, over
  the policy-scaled rows s_i d_i (a staleness discount shrinks a row before the rule sees it,
  as it shrinks the row's term in the mean). A step with fewer rows than the rule is defined
  for (Krum: f + 3) leaves the model as it is and reports ``robust_skipped = 1``.

Every strategy, raysim's and a user's (``[server] strategy = "package.module:Name"``), is a
:class:`ServerStrategy`: ``init(params) -> state`` and ``aggregate(params, state, updates) ->
(params, state, metrics)``, the state a value the checkpoint holds as data (numbers, arrays and
containers of them, or raysim dataclasses), so tests compare values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from raysim.algorithms.aggregation import client_weights, weighted_mean
from raysim.algorithms.fednova import fednova_aggregate, local_step_norm
from raysim.algorithms.robust import ROBUST_AGGREGATORS, minimum_rows
from raysim.algorithms.server_opt import ServerOptimizer, ServerOptState
from raysim.algorithms.sgd import SGDConfig

WeightFn = Callable[[int, int], float]  # (client id, samples) -> weight


@dataclass(frozen=True)
class Update:
    """One client's contribution to a server step: its id, ``num_samples`` (the examples it trained
    on, ``LocalResult.examples``: its weight under ``weighting = "samples"``) and local steps, the delta
    as the server received it, the policy's staleness ``scale`` (1 when fresh), and the client
    algorithm's ``extras`` (arrays, e.g. SCAFFOLD's control delta) and ``metrics``."""

    client_id: int
    num_samples: int
    steps: int
    delta: np.ndarray
    scale: float = 1.0
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunFacts:
    """What a run tells a strategy that asks for it (``init(self, params, run)``): the number of
    clients in the population, the cohort a round is for, and the run's seed, so that a strategy
    such as FedDyn's (whose h averages over all clients) needs no option repeating them."""

    population: int
    cohort: int
    seed: int


@runtime_checkable
class ServerStrategy(Protocol):
    """What the driver asks of a server strategy. ``aggregate`` must not change its inputs;
    with no updates (a round without reports) it should return the model unchanged. A strategy
    may also define ``broadcast(state) -> {name: array}``, arrays sent to every client with the
    model (``LocalTask.server``). A user's strategy may take the run's facts in ``init(self,
    params, run)`` (a :class:`RunFacts`) instead of ``init(self, params)``."""

    def init(self, params: np.ndarray) -> Any:
        """The strategy's state before the first round."""

    def aggregate(self, params: np.ndarray, state: Any,
                  updates: Sequence[Update]) -> tuple[np.ndarray, Any, Mapping[str, float]]:
        """The new global parameters, the new state and the step's metrics (round-row columns)."""


@dataclass(frozen=True)
class ServerState:
    """The driver's side of the server: the global model, the strategy's state and the model
    version (one per server step)."""

    params: np.ndarray
    strategy_state: Any
    version: int = 0


@dataclass(frozen=True)
class Strategy:
    server_optimizer: ServerOptimizer
    weighting: str | WeightFn = "samples"
    reducer: str = "mean"  # "mean", "fednova", or a name in ROBUST_AGGREGATORS
    reducer_params: Mapping[str, Any] = field(default_factory=dict)
    client_sgd: SGDConfig | None = None  # FedNova needs the client optimiser to normalise

    def init(self, params: np.ndarray) -> ServerOptState:
        return self.server_optimizer.init(params)

    def aggregate(self, params: np.ndarray, state: ServerOptState,
                  updates: Sequence[Update]) -> tuple[np.ndarray, ServerOptState, dict[str, float]]:
        """One server step; with no updates the model stays as it is (a round without reports).
        A robust rule short of the rows it is defined for leaves it as it is too, and says so."""
        ordered = sorted(updates, key=lambda u: u.client_id)
        if self.reducer not in ROBUST_AGGREGATORS:
            return self.step(params, state, self.reduce(ordered) if ordered else None)
        short = 0 < len(ordered) < minimum_rows(self.reducer, **self.reducer_params)
        params, state, metrics = self.step(params, state, self.reduce(ordered) if ordered and not short else None)
        return params, state, {**metrics, "robust_skipped": float(short)}

    def step(self, params: np.ndarray, state: ServerOptState,
             delta: np.ndarray | None) -> tuple[np.ndarray, ServerOptState, dict[str, float]]:
        """Applies an already reduced delta (None: the round produced no usable update)."""
        if delta is None:
            return params, state, {"update_norm": 0.0}
        params, state = self.server_optimizer.apply(params, delta, state)
        return params, state, {"update_norm": float(np.linalg.norm(delta))}

    def weights(self, updates: Sequence[Update]) -> np.ndarray:
        return self.weights_of([u.client_id for u in updates], [u.num_samples for u in updates])

    def weights_of(self, clients: Sequence[int], num_samples: Sequence[int]) -> np.ndarray:
        """Unnormalised weights of clients holding these sample counts."""
        if callable(self.weighting):
            return np.array([float(self.weighting(c, n)) for c, n in zip(clients, num_samples)])
        return client_weights(num_samples, self.weighting)

    def reduce(self, updates: Sequence[Update]) -> np.ndarray:
        """The aggregated delta D_t of updates sorted by client id."""
        weights = self.weights(updates)
        scales = [u.scale for u in updates]
        if self.reducer == "mean":
            return weighted_mean([u.delta for u in updates], weights, scales)
        rows = np.stack([np.asarray(u.delta, dtype=np.float64) for u in updates]) * np.asarray(scales)[:, None]
        if self.reducer == "fednova":
            sgd = self.client_sgd or SGDConfig(lr=1.0)
            norms = np.array([local_step_norm(steps=u.steps, momentum=sgd.momentum, proximal_mu=sgd.proximal_mu,
                                              lr=sgd.lr if sgd.proximal_mu else None) for u in updates])
            return fednova_aggregate(rows, weights, norms)
        return ROBUST_AGGREGATORS[self.reducer](rows, weights, **self.reducer_params)
