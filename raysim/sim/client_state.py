"""What the server keeps of each client across rounds: the client's own state and error-feedback
memory, in the per-client store (``state_store.py``), and with personal layers each client's own
head. Kept apart from the driver's loop so the per-client mechanisms read (and are
checkpointed) together."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from raysim.algorithms.personal import PersonalLayers
from raysim.sim.state_store import ClientStore


class ClientState:
    """The ``store`` of every client's algorithm state and feedback memory, and the heads of
    ``personal``."""

    def __init__(self, *, store: ClientStore, personal: PersonalLayers | None):
        self.store = store
        self.personal = personal

    def algorithm_state(self, client: int) -> dict[str, np.ndarray]:
        """The client algorithm's state, as the client left it when its last update was aggregated."""
        return self.store.get(client, "algorithm")

    def keep_algorithm_state(self, client: int, state: Mapping[str, np.ndarray]) -> None:
        self.store.put(client, "algorithm", state)

    def feedback(self, client: int) -> np.ndarray | None:
        """The client's error-feedback memory (compression/feedback.py), None before its first upload."""
        return self.store.get(client, "feedback").get("memory")

    def keep_feedback(self, client: int, memory: np.ndarray) -> None:
        self.store.put(client, "feedback", {"memory": memory})

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
