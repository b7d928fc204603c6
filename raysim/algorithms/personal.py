"""Personalisation with local layers: each client keeps its own head, only the body is federated.

As in FedPer (Arivazhagan et al. 2019, arXiv:1912.00818): state entries whose names start with
one of ``local_layers`` never leave the client. A client trains from the global body plus its
own head (the initial head on its first round), sends only the body's delta, and keeps the
trained head for next time, so local models differ from the global one. Evaluation reports, on
each client's own held-out examples, both the global model and the client's personalised model.

``local_layers`` naming every layer is the local-only baseline: each client trains its own model
on its own examples, nothing is sent (the global model stays the initial one), and the
personalised score is each client's own model on its held-out examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from raysim.seeding import Stream, rng

if TYPE_CHECKING:
    from raysim.models.layout import ParamLayout


@dataclass(frozen=True, kw_only=True)
class PersonalConfig:
    """``[personal]``: ``local_layers`` (name prefixes, e.g. ["9."] for the CNN's last layer) and
    ``holdout``, each client's share of examples kept for personalised evaluation."""

    local_layers: tuple[str, ...] = ()
    holdout: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.holdout < 1:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if self.local_layers and not self.holdout:
            raise ValueError("local_layers needs holdout > 0 to evaluate the personalised models")


def local_mask(layout: ParamLayout, prefixes: tuple[str, ...]) -> np.ndarray:
    """A boolean mask over the flat state: True where the entry stays on the client."""
    mask = np.zeros(layout.size, dtype=bool)
    offset = 0
    matched = set()
    for name, shape in zip(layout.names, layout.shapes):
        size = int(np.prod(shape))
        hits = [p for p in prefixes if name.startswith(p)]
        if hits:
            mask[offset : offset + size] = True
            matched.update(hits)
        offset += size
    unmatched = [p for p in prefixes if p not in matched]
    if unmatched:
        raise ValueError(f"local_layers {unmatched} match no state entry; the model has {list(layout.names)}")
    return mask


def holdout_split(parts: list[np.ndarray], fraction: float, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Splits each client's indices into (train, held out); at least one of each when possible."""
    train, held = [], []
    for client, indices in enumerate(parts):
        order = rng(seed, Stream.HOLDOUT, client).permutation(len(indices))
        count = min(max(round(fraction * len(indices)), 1 if len(indices) > 1 else 0), len(indices) - 1) if fraction else 0
        held.append(np.sort(indices[order[:count]]))
        train.append(np.sort(indices[order[count:]]))
    return train, held


class PersonalLayers:
    """Which entries are a client's head, and how a head enters and leaves a task. The heads
    themselves are per-client state: the driver keeps them in its per-client store
    (sim/state/client_state.py), so a million clients' heads spill to disk like any other state."""

    def __init__(self, mask: np.ndarray):
        self.mask = mask

    @property
    def body_fraction(self) -> float:
        return float(1 - self.mask.mean())

    def start(self, global_params: np.ndarray, head: np.ndarray | None) -> np.ndarray:
        """The model a client trains from: the global body with its own head (the global one
        before it has trained)."""
        if head is None:
            return global_params
        params = global_params.copy()
        params[self.mask] = head
        return params

    def head_of(self, trained: np.ndarray) -> np.ndarray:
        """The head a client keeps from the model it trained."""
        return np.asarray(trained, dtype=np.float32)[self.mask]

    def without_head(self, delta: np.ndarray) -> np.ndarray:
        """The delta with the head's entries zeroed: what the client sends."""
        delta = np.array(delta, dtype=np.float64)
        delta[self.mask] = 0.0
        return delta
