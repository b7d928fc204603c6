"""What the simulator knows of each client from its tasks: the feedback selectors learn from.

The server learns a task's training loss and duration when the update arrives, and that it
failed when it fails; only those moments write a record, so a selector sees nothing the server
would not know at the time it selects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ClientRecord:
    """One client's history as the server saw it.

    ``tries`` tasks dispatched to it, the last for round ``last_tried``; ``completions`` updates
    that reached the server, the last for round ``last_round``; of that last update: ``loss`` the
    mean training loss it reported, ``loss_rms`` the root mean square of its per-sample losses
    where the client algorithm reports one (metric ``loss_rms``); None when unknown (or not finite), ``samples`` the
    examples it trained on, and its measured durations on the simulated clock (``duration_s`` from
    dispatch to arrival, of which ``compute_s``); ``last_fate`` how its last task ended
    ("arrived", "dropout", "offline", "late", "excess", ...).
    """

    tries: int = 0
    last_tried: int = -1
    completions: int = 0
    last_round: int = -1
    loss: float | None = None
    loss_rms: float | None = None
    samples: int = 0
    duration_s: float | None = None
    compute_s: float | None = None
    last_fate: str = ""


def dispatched(records: dict[int, ClientRecord], clients: list[int], *, round_number: int) -> None:
    """The clients were asked to train for ``round_number``."""
    for client in clients:
        record = records.setdefault(client, ClientRecord())
        record.tries += 1
        record.last_tried = round_number


def arrived(records: dict[int, ClientRecord], client: int, *, round_number: int, loss: float, loss_rms: float | None,
            samples: int, duration_s: float, compute_s: float) -> None:
    """Its update reached the server, with what the client reported and how long it took."""
    record = records.setdefault(client, ClientRecord())
    record.completions += 1
    record.last_round = round_number
    record.loss, record.loss_rms, record.samples = _finite(loss), _finite(loss_rms), int(samples)
    record.duration_s, record.compute_s = float(duration_s), float(compute_s)
    record.last_fate = "arrived"


def failed(records: dict[int, ClientRecord], client: int, reason: str) -> None:
    """Its task ended without an update the server used (dropout, offline, late, excess, ...)."""
    records.setdefault(client, ClientRecord()).last_fate = reason


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
