"""The layout of a model's flat state vector, without torch: what the driver knows of the model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of the entries of the flat state vector, in order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    num_trainable: int  # length of the parameter prefix

    @property
    def tensor_sizes(self) -> tuple[int, ...]:
        """Entries of each tensor, in order."""
        return tuple(int(np.prod(s)) for s in self.shapes)

    @property
    def size(self) -> int:
        return sum(self.tensor_sizes)

    @property
    def nbytes(self) -> int:
        """Bytes of the state vector sent over the (simulated) network in float32."""
        return 4 * self.size
