"""What the server keeps of each client across rounds, all in the per-client store
(``state_store.py``, slots ``algorithm``, ``feedback`` and ``personal``): the client algorithm's
own state, the error-feedback memory and, with personal layers, the client's own head. Kept apart
from the driver's loop so the per-client mechanisms read (and are checkpointed) together.

The algorithm state and the head are the client's: they are kept when the client's task
finishes (its update reached the server, or an event-triggered client chose not to send),
whatever the server then does with the update (applies it, buffers it, discards it as late,
a committee rejects it), since a device keeps what it computed. A task that ends unfinished
(dropout, offline, a deadline's late or excess task, a dropped straggler, a lost worker) or whose
update is not finite keeps nothing. A client runs one task at a time, so its next task starts
from what its last finished one kept, under every policy, and the state of a client in flight is
the one its task started from (what a resumed run trains it from again)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from raysim.algorithms.personal import PersonalLayers
from raysim.sim.state.state_store import ClientStore


class ClientState:
    """The ``store`` of every client's algorithm state, feedback memory and head; ``personal``
    says which entries a head is (None without personal layers)."""

    def __init__(self, *, store: ClientStore, personal: PersonalLayers | None):
        self.store = store
        self.personal = personal

    def algorithm_state(self, client: int) -> dict[str, np.ndarray]:
        """The client algorithm's state, as the client's last finished task left it."""
        return self.store.get(client, "algorithm")

    def keep_algorithm_state(self, client: int, state: Mapping[str, np.ndarray]) -> None:
        self.store.put(client, "algorithm", state)

    def feedback(self, client: int) -> np.ndarray | None:
        """The client's error-feedback memory (compression/feedback.py), None before its first upload."""
        return self.store.get(client, "feedback").get("memory")

    def keep_feedback(self, client: int, memory: np.ndarray) -> None:
        self.store.put(client, "feedback", {"memory": memory})

    def head(self, client: int) -> np.ndarray | None:
        """The client's own head (personal layers), None before it has trained one."""
        return self.store.get(client, "personal").get("head") if self.personal is not None else None

    def start(self, global_params: np.ndarray, client: int) -> np.ndarray | None:
        """The model a client with a head trains from (the global body, its head); None if it has none."""
        head = self.head(client)
        return None if head is None else self.personal.start(global_params, head)

    def keep_head(self, client: int, start: np.ndarray, trained_delta: np.ndarray) -> None:
        """With personal layers, the client keeps the head it trained (from ``start``, by ``trained_delta``)."""
        if self.personal is not None:
            self.store.put(client, "personal", {"head": self.personal.head_of(start.astype(np.float64) + trained_delta)})

    def sent(self, delta: np.ndarray) -> np.ndarray:
        """The delta the server sees: with personal layers, the head's entries zeroed (never
        sent); otherwise ``delta`` unchanged."""
        return delta if self.personal is None else self.personal.without_head(delta)
