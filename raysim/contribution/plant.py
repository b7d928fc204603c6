"""Planted ground truth for checking valuations: clients made worse (or copied) on purpose, so
the expected ranking is known before the run (the validation scenarios in
scenarios/contribution/).

The corruptions follow mplc's (LabeliaLabs/distributed-learning-contributivity): a label-noise
ladder (``Randomize`` with a proportion: a share of a client's labels replaced by another class),
duplicated clients (``Duplication``) and a data-size ladder (``amount_per_partners``). Planted
free-riders are an update-level behaviour: ``[attack] kind = "free_rider"`` (algorithms/attacks.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class PlantConfig:
    """``[contribution.plant]``: ``label_noise[i]`` is the share of client i's labels replaced by
    another class, ``sizes[i]`` the share of its shard client i keeps, and each pair
    ``[copy, original]`` of ``duplicates`` gives client ``copy`` the very examples of ``original``.
    Clients past the lists' ends are left as they are."""

    label_noise: tuple[float, ...] = ()
    sizes: tuple[float, ...] = ()
    duplicates: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        if any(not 0 <= f < 1 for f in self.label_noise):
            raise ValueError(f"plant.label_noise shares must be in [0, 1), got {list(self.label_noise)}")
        if any(not 0 < f <= 1 for f in self.sizes):
            raise ValueError(f"plant.sizes shares must be in (0, 1], got {list(self.sizes)}")
        for pair in self.duplicates:
            if len(pair) != 2 or pair[0] == pair[1] or min(pair) < 0:
                raise ValueError(f"plant.duplicates entries must be [copy, original] with two different client "
                                 f"ids >= 0, got {list(pair)}")
        copies = [pair[0] for pair in self.duplicates]
        if len(set(copies)) != len(copies) or set(copies) & {pair[1] for pair in self.duplicates}:
            raise ValueError("plant.duplicates: a client is copied into twice, or a copy is itself copied")

    @property
    def clients(self) -> int:
        """How many clients the plan names (ids below this)."""
        return max([len(self.label_noise), len(self.sizes), *(max(p) + 1 for p in self.duplicates)], default=0)


def plant(parts: list[np.ndarray], labels: np.ndarray, config: PlantConfig, num_classes: int,
          draw: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """(the clients' shards, the training labels) with the plan applied: sizes cut first, then
    labels noised, then duplicates copied (so a copy has its original's labels, noise included)."""
    parts = [np.array(p) for p in parts]
    labels = np.array(labels)
    for client, share in enumerate(config.sizes):
        keep = max(1, round(share * len(parts[client])))
        parts[client] = np.sort(draw.permutation(parts[client])[:keep])
    for client, share in enumerate(config.label_noise):
        rows = draw.permutation(parts[client])[: round(share * len(parts[client]))]
        labels[rows] = (labels[rows] + draw.integers(1, num_classes, size=len(rows))) % num_classes
    for copy, original in config.duplicates:
        parts[copy] = parts[original].copy()
    return parts, labels
