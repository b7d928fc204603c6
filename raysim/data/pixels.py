"""Images kept as their uint8 pixels, standardised only where a model reads them.

A float32 copy of an image data set is four times its pixels: 188 MB against 47 MB for
Fashion-MNIST's training set. A Ray run holds the data set once, in the object store, mapped by
every client actor, so the smaller form is what every process pays for. The standardisation,
(x/255 - mean)/std per channel in float32, is applied to the rows a client trains or a slice
evaluates on, when it reads them; each step is one correctly rounded float32 operation, so
numpy (here) and torch (``runtime/worker.py``) give the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PixelScale:
    """How a data set's uint8 pixels [N, C, H, W] become model inputs: per channel, in float32,
    (x/255 - mean)/std."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def channel_shape(self) -> tuple[int, int, int]:
        """Shape that broadcasts a per-channel statistic over [..., C, H, W]."""
        return (len(self.mean), 1, 1)

    def standardise(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 [..., C, H, W] -> float32 inputs, in one float32 array (no temporaries)."""
        images = pixels.astype(np.float32)
        images /= np.float32(255)
        images -= np.asarray(self.mean, dtype=np.float32).reshape(self.channel_shape())
        images /= np.asarray(self.std, dtype=np.float32).reshape(self.channel_shape())
        return images
