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

    def named(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """The flat state vector by entry name, each reshaped (views of ``flat``): the model's
        ``state_dict`` as arrays, as model files store it (``results/model_file.py``)."""
        ends = np.cumsum(self.tensor_sizes)[:-1]
        return {name: part.reshape(shape) for name, part, shape in zip(self.names, np.split(flat, ends), self.shapes)}
