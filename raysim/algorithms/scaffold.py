"""SCAFFOLD's control variates, option II (Karimireddy et al. 2020, arXiv:1910.06378).

Clients correct every local gradient by c - c_i, the server's control minus their own. After K
local steps with lr eta_l from x to y, option II sets c_i+ = c_i - c + (x - y) / (K eta_l); the
client returns dy = y - x and dc = c_i+ - c_i. The server moves x by eta_g times the weighted
average of dy (the strategy's weighting) and c by sum_i s_i dc_i over the round's clients.

Weighting. The paper's c <- c + (1/N) sum dc keeps c = (1/N) sum_i c_i, the *unweighted* mean
of all clients' controls; at SCAFFOLD's fixed point every c_i is client i's gradient and c = 0,
so x is the optimum of the *unweighted* objective (1/N) sum_i f_i whatever weights the model
update uses. raysim weights the control update like the model: s_i = w_i / sum_j w_j, the sum
over the whole population (w = sample counts by default, 1 for ``server.weighting = 'uniform'``,
which gives the paper's 1/N). Then c = sum_i s_i c_i at all times, and the fixed point is the
optimum of the weighted objective sum_i s_i f_i, the one FedAvg's sample weighting targets.

Precision. The controls are kept in the model's dtype (float32 for a float32 model): the server's
c starts as zeros of the parameters' dtype, and every function here computes in the dtype of its
arrays, so a client's c_i, derived from c and its float32 update, is float32 too. A client's
control is as large as the model and one is kept per client (sim/state/client_state.py): float64
would double the store, the traffic to the workers and the checkpoints for digits the float32
gradients it corrects never had. An algorithm that wants float64 controls passes float64 arrays
(a float64 model, or its own state), and gets float64 back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from raysim.algorithms.strategy import Update


def correction(server_control: np.ndarray, client_control: np.ndarray) -> np.ndarray:
    """The term added to every local gradient: c - c_i."""
    return np.asarray(server_control) - np.asarray(client_control)


def client_control_delta(*, server_control: np.ndarray, delta: np.ndarray, steps: int, lr: float) -> np.ndarray:
    """dc = c_i+ - c_i = -c + (x - y) / (K eta_l) = -c - dy / (K eta_l) (option II), in the
    dtype of c and dy (float32 for a float32 model's)."""
    if steps < 1 or lr <= 0:
        raise ValueError(f"steps must be >= 1 and lr > 0, got steps={steps}, lr={lr}")
    control, moved = np.asarray(server_control), np.asarray(delta)
    dtype = np.result_type(control, moved)
    return -control.astype(dtype, copy=False) - moved.astype(dtype, copy=False) / dtype.type(steps * lr)


def server_control_update(server_control: np.ndarray, control_deltas: Sequence[np.ndarray],
                          shares: Sequence[float]) -> np.ndarray:
    """c <- c + sum_i s_i dc_i over the round's clients, s_i their share of the population's
    total weight (1/N each for uniform weighting, the paper's rule); c keeps its dtype (a dc_i
    derived from a float64 update, as a codec decodes it, is rounded to it)."""
    if len(control_deltas) != len(shares):
        raise ValueError(f"{len(control_deltas)} control deltas but {len(shares)} shares")
    total = np.array(server_control, copy=True)
    for dc, share in zip(control_deltas, shares):
        total += total.dtype.type(share) * np.asarray(dc, dtype=total.dtype)
    return total


@dataclass(frozen=True)
class ScaffoldState:
    """The wrapped strategy's state and the server's control variate c."""

    inner: Any
    control: np.ndarray


@dataclass(frozen=True)
class ScaffoldServer:
    """SCAFFOLD's server side around a strategy (``strategy.py``'s protocol): the model moves as
    ``inner`` says; c is broadcast to every client as ``control`` and moves by sum_i s_i dc_i over
    the round's updates, ``shares`` indexed by client id, each dc_i derived from the update as
    received (its delta and local steps, the clients' ``lr``), as the client derives its own
    (``models/algorithm.py:ScaffoldClient``); entries past ``trainable`` get no control."""

    inner: Any
    shares: np.ndarray
    lr: float
    trainable: int

    def init(self, params: np.ndarray) -> ScaffoldState:
        return ScaffoldState(inner=self.inner.init(params), control=np.zeros(params.size, dtype=params.dtype))

    def broadcast(self, state: ScaffoldState) -> dict[str, np.ndarray]:
        return {"control": state.control}

    def aggregate(self, params: np.ndarray, state: ScaffoldState,
                  updates: Sequence[Update]) -> tuple[np.ndarray, ScaffoldState, Mapping[str, float]]:
        deltas = []
        for update in updates:
            dc = client_control_delta(server_control=state.control, delta=update.delta, steps=update.steps, lr=self.lr)
            dc[self.trainable:] = 0.0
            deltas.append(dc)
        control = server_control_update(state.control, deltas, [self.shares[u.client_id] for u in updates])
        params, inner, metrics = self.inner.aggregate(params, state.inner, updates)
        return params, ScaffoldState(inner=inner, control=control), metrics
