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
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def correction(server_control: np.ndarray, client_control: np.ndarray) -> np.ndarray:
    """The term added to every local gradient: c - c_i."""
    return np.asarray(server_control, dtype=np.float64) - np.asarray(client_control, dtype=np.float64)


def client_control_delta(*, server_control: np.ndarray, delta: np.ndarray, steps: int, lr: float) -> np.ndarray:
    """dc = c_i+ - c_i = -c + (x - y) / (K eta_l) = -c - dy / (K eta_l) (option II)."""
    if steps < 1 or lr <= 0:
        raise ValueError(f"steps must be >= 1 and lr > 0, got steps={steps}, lr={lr}")
    return -np.asarray(server_control, dtype=np.float64) - np.asarray(delta, dtype=np.float64) / (steps * lr)


def server_control_update(server_control: np.ndarray, control_deltas: Sequence[np.ndarray],
                          shares: Sequence[float]) -> np.ndarray:
    """c <- c + sum_i s_i dc_i over the round's clients, s_i their share of the population's
    total weight (1/N each for uniform weighting, the paper's rule)."""
    if len(control_deltas) != len(shares):
        raise ValueError(f"{len(control_deltas)} control deltas but {len(shares)} shares")
    total = np.asarray(server_control, dtype=np.float64).copy()
    for dc, share in zip(control_deltas, shares):
        total += share * np.asarray(dc, dtype=np.float64)
    return total


def update_controls(server_control: np.ndarray, client_controls: Mapping[int, np.ndarray], *,
                    deltas: Mapping[int, tuple[np.ndarray, int]], shares: Sequence[float], lr: float,
                    trainable: int) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """One round's bookkeeping: c_i += dc_i for each client of ``deltas`` (client -> (dy, local
    steps)), c += sum s_i dc_i with ``shares`` indexed by client id; buffers past ``trainable``
    (BatchNorm statistics) get no control."""
    controls = dict(client_controls)
    dcs = []
    for client, (delta, steps) in deltas.items():
        dc = client_control_delta(server_control=server_control, delta=delta, steps=steps, lr=lr)
        dc[trainable:] = 0.0
        controls[client] = controls.get(client, 0.0) + dc
        dcs.append(dc)
    return server_control_update(server_control, dcs, [shares[c] for c in deltas]), controls
