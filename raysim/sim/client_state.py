"""What the server keeps of each client across rounds: SCAFFOLD's control variates and, with
personal layers, each client's own head. Kept apart from the driver's loop so the two
per-client mechanisms read (and are checkpointed) together."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from raysim.algorithms.personal import PersonalLayers
from raysim.algorithms.scaffold import correction, update_controls
from raysim.algorithms.strategy import Update


class ClientState:
    """``server_control`` (c) and ``client_controls`` (c_i) when ``shares`` is given (SCAFFOLD:
    c moves by each client's share of the population's weight, scaffold.py), and the heads of
    ``personal``."""

    def __init__(self, *, num_params: int, trainable: int, lr: float, shares: np.ndarray | None,
                 personal: PersonalLayers | None):
        self.trainable = trainable
        self.lr = lr
        self.shares = shares
        self.server_control = np.zeros(num_params) if shares is not None else None
        self.client_controls: dict[int, np.ndarray] = {}
        self.personal = personal

    def correction(self, client: int) -> np.ndarray | None:
        """SCAFFOLD's c - c_i for a client's task (trainable entries only); None without SCAFFOLD."""
        if self.server_control is None:
            return None
        own = self.client_controls.get(client, np.zeros_like(self.server_control))
        return correction(self.server_control, own)[:self.trainable].astype(np.float32)

    def update_controls(self, updates: Sequence[Update]) -> None:
        """SCAFFOLD option II: c_i += dc_i for the round's clients, c += sum s_i dc_i."""
        if self.server_control is None:
            return
        self.server_control, self.client_controls = update_controls(
            self.server_control, self.client_controls, deltas={u.client_id: (u.delta, u.steps) for u in updates},
            shares=self.shares, lr=self.lr, trainable=self.trainable)

    def start(self, global_params: np.ndarray, client: int) -> np.ndarray | None:
        """The model a client with a head trains from (the global body, its head); None if it has none."""
        if self.personal is None or client not in self.personal.heads:
            return None
        return self.personal.start(global_params, client)

    def keep_head(self, client: int, start: np.ndarray, trained_delta: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """The delta the server sees: with personal layers, the client keeps the head it trained
        (from ``start``, by ``trained_delta``) and the head's entries are zeroed (never sent);
        otherwise ``delta`` unchanged."""
        if self.personal is None:
            return delta
        return self.personal.absorb(client, start.astype(np.float64) + trained_delta, delta)
