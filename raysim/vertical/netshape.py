"""The SplitNN network's shape and initial seeds (splitnn.py trains it).

Apart from the training, without torch: the scenario reads ``[vertical.splitnn]`` into a
``NetShape`` and the vertical round loop counts the embeddings' bytes, in processes that never
train a network.
"""

from __future__ import annotations

from dataclasses import dataclass

from raysim.inputs import at_least
from raysim.seeding import Stream, rng

FLOAT_BYTES = 4  # float32: what an embedding or its gradient costs per value on the wire


@dataclass(frozen=True, kw_only=True)
class NetShape:
    """``[vertical.splitnn]``, the network: each bottom is in -> hidden -> ReLU -> embedding ->
    ReLU; the top is linear; SGD with ``lr`` and ``momentum``."""

    hidden: int = 64
    embedding: int = 32
    lr: float = 0.05
    momentum: float = 0.9

    def __post_init__(self) -> None:
        at_least("hidden", self.hidden, 1)
        at_least("embedding", self.embedding, 1)
        if self.lr <= 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"lr must be > 0 and momentum in [0, 1), got {self.lr} and {self.momentum}")


def init_seed(seed: int, key: int) -> int:
    """The torch seed of party ``key``'s bottom model (``key`` = number of parties: the top)."""
    return int(rng(seed, Stream.VERTICAL_TRAIN, 0, key).integers(2**31))
