"""Deterministic randomness: every draw derives from (scenario seed, purpose, keys...).

No module keeps hidden RNG state. A client's batch order in round 7 is a pure function of
``(seed, Stream.BATCHES, 7, client_id)``, so results do not depend on which actor trained the
client, in which order Ray finished the tasks, or how many actors there were.
"""

from __future__ import annotations

from enum import IntEnum, unique

import numpy as np


@unique  # two purposes sharing a number would share their draws: refused at import
class Stream(IntEnum):
    """Purposes of random draws; each gets an independent stream."""

    MODEL_INIT = 1
    SELECTION = 2
    BATCHES = 3
    SYSTEM_PROFILE = 4
    DROPOUT = 5
    PARTITION = 6
    STRAGGLERS = 7
    ATTACK = 8
    PRIVACY = 9
    HOLDOUT = 10
    EVALUATION = 11  # the clients a sampled client evaluation scores, fine-tuning batches
    VERTICAL_DATA = 12  # vertical FL: overlap, ids, row orders, held-out rows
    PSI = 13  # vertical FL: each party's secret scalar and shuffle
    VERTICAL_TRAIN = 14  # vertical FL: model init, batch order, gradient masks
    COMPRESSION = 15  # update codecs: QSGD's rounding, random-k's and the masks' positions
    CONTRIBUTION = 16  # TMC's and GTG's permutations
    VALIDATION = 17  # the server's validation rows for contribution utilities
    TOPOLOGY = 18  # [network]: gossip graphs, the pairwise schedule, edge assignment, evaluated nodes
    LEDGER = 19  # [network] ledger: the PoW race, committees
    FLOWER = 20  # [flower]: each delivery's seeds on the node's side (sim/bridges/flower_grid.py)


def rng(seed: int, stream: Stream, *keys: int) -> np.random.Generator:
    """Returns a fresh generator for one purpose and key tuple (e.g. round, client id)."""
    return np.random.default_rng(_entropy(seed, stream, keys))


def derive_seed(seed: int, stream: Stream, *keys: int) -> int:
    """A 63-bit integer seed for libraries that take one (torch.Generator.manual_seed)."""
    state = np.random.SeedSequence(_entropy(seed, stream, keys)).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _entropy(seed: int, stream: Stream, keys: tuple[int, ...]) -> list[int]:
    values = [int(seed), int(stream), *(int(k) for k in keys)]
    if any(v < 0 for v in values):
        raise ValueError(f"seed keys must be non-negative integers, got {values}")
    return values
