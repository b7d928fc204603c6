"""The selection stage: the driver's one seam for choosing clients.

It holds the selector and the clients' records (outcomes.py), both checkpointed with the run,
and checks what a selector returns before a task is planned: a user's selector that names a
busy, offline or unknown client, or more clients than asked, stops the run with a line naming
the selector instead of starting a task the simulation could not have started.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from raysim.sim.selection import outcomes
from raysim.sim.selection.outcomes import ClientRecord
from raysim.sim.selection.protocol import SelectionView


class SelectionError(RuntimeError):
    """A selector returned clients that cannot be dispatched."""


class SelectionStage:
    def __init__(self, selector: Any):
        self.selector = selector
        self.records: dict[int, ClientRecord] = {}

    def choose(self, count: int, view: SelectionView, draw: np.random.Generator) -> list[int]:
        """The selector's clients for one dispatch, checked, in id order."""
        chosen = self.selector.select(count, view, draw)
        name = f"{type(self.selector).__module__}:{type(self.selector).__qualname__}"
        clients = []
        for client in chosen:
            if isinstance(client, bool) or not isinstance(client, (int, np.integer)):
                raise SelectionError(f"round {view.round}: the selector {name} returned {client!r}, not a client id")
            clients.append(int(client))
        if len(set(clients)) != len(clients) or len(clients) > count:
            raise SelectionError(f"round {view.round}: the selector {name} returned {len(clients)} ids with "
                                 f"{len(clients) - len(set(clients))} repeated, for a dispatch of at most {count}")
        unfit = [c for c in clients if not 0 <= c < view.num_clients or not view.available(c)]
        if unfit:
            raise SelectionError(f"round {view.round}: the selector {name} returned clients {unfit[:5]} that are "
                                 "not idle and online now (select among view.candidates(), or test view.available)")
        return sorted(clients)

    def dispatched(self, clients: list[int], *, round_number: int) -> None:
        outcomes.dispatched(self.records, clients, round_number=round_number)

    def arrived(self, client: int, *, round_number: int, loss: float, metrics: dict, samples: int,
                duration_s: float, compute_s: float) -> None:
        outcomes.arrived(self.records, client, round_number=round_number, loss=loss,
                         loss_rms=metrics.get("loss_rms"), samples=samples,
                         duration_s=duration_s, compute_s=compute_s)

    def failed(self, client: int, reason: str) -> None:
        outcomes.failed(self.records, client, reason)
