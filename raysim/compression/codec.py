"""The codec contract: an update (the delta ``w_local - w_global``, never the weights) encoded
tensor by tensor into a payload of flat arrays, and decoded back.

Every codec here sends a payload whose size depends only on the model's layout, never on the
values (no entropy coding): the simulated upload time can then be decided when a task is
dispatched, before its update exists, as the rest of the cost model is. ``field_bytes`` is
that size worked out analytically; tests check it against what ``encode`` produces.

Bytes convention (one for every table, compressed or not): a message counts its payload, the
values, indices, codes, scales and seeds it carries, without framing. That is how the dense
model is counted (numel x 4 for float32), how FLSim and the papers count, so a
``compression_ratio`` of dense over payload reads as theirs (fp32: exactly 1.0); and framing
belongs to the transport, which adds its own (``network/mqtt.py``'s packet headers on a broker).
The framed message (``wire.py``) still carries every update, and is checked against
``wire_bytes``, so what is decoded is what was counted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Iterator, Sequence

import numpy as np

from raysim.compression.wire import wire_size


class Codec(ABC):
    """Encodes the update tensor by tensor; ``sizes`` are the entries of each tensor of the flat
    vector, in layout order (per-tensor scales and ranks, as FLSim and the papers do)."""

    name: ClassVar[str]
    unbiased: ClassVar[bool] = False  # E[decode(encode(v))] = v over the codec's randomness

    def __init__(self, sizes: Sequence[int]):
        self.sizes = tuple(int(n) for n in sizes)
        self.bounds = np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)])

    @abstractmethod
    def encode(self, delta: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """The payload's fields; random draws only from ``rng``."""

    @abstractmethod
    def decode(self, fields: Sequence[np.ndarray]) -> np.ndarray:
        """The float64 update the fields stand for."""

    @abstractmethod
    def field_bytes(self) -> list[int]:
        """The analytic size of each field of the payload."""

    def tensors(self, delta: np.ndarray) -> Iterator[np.ndarray]:
        """The update's tensors as float64 views, in layout order."""
        flat = np.asarray(delta, dtype=np.float64).reshape(-1)
        if flat.size != self.bounds[-1]:
            raise ValueError(f"{self.name}: an update of {flat.size} entries for a layout of {self.bounds[-1]}")
        return (flat[start:end] for start, end in zip(self.bounds[:-1], self.bounds[1:]))

    def variance_bound(self) -> float | None:
        """For an unbiased codec, omega: E||C(v) - v||^2 <= omega ||v||^2 for every tensor of this
        layout; None for a biased one. Error feedback shrinks its memory only when omega < 1."""
        return None

    @property
    def payload_bytes(self) -> int:
        """The bytes a message is counted as (the module's convention): values, indices, codes
        and scales, without framing."""
        return sum(self.field_bytes())

    @property
    def wire_bytes(self) -> int:
        """The framed message's size (wire.py): checked when an update travels, not reported."""
        return wire_size(self.field_bytes())


class PerTensorCodec(Codec):
    """A codec stated for one tensor, applied to each in turn (a fixed number of fields each)."""

    @abstractmethod
    def encode_tensor(self, values: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """The fields one tensor's float64 values travel as."""

    @abstractmethod
    def decode_tensor(self, fields: Sequence[np.ndarray], size: int) -> np.ndarray:
        """The float64 values a tensor's fields stand for."""

    @abstractmethod
    def tensor_field_bytes(self, size: int) -> tuple[int, ...]:
        """The analytic size of each field of a tensor of ``size`` entries."""

    def encode(self, delta, rng):
        return [field for values in self.tensors(delta) for field in self.encode_tensor(values, rng)]

    def decode(self, fields):
        per_tensor = len(self.tensor_field_bytes(1))
        if len(fields) != per_tensor * len(self.sizes):
            raise ValueError(f"{self.name}: {len(fields)} fields for {len(self.sizes)} tensors")
        return np.concatenate([self.decode_tensor(fields[i * per_tensor:(i + 1) * per_tensor], size)
                               for i, size in enumerate(self.sizes)])

    def field_bytes(self):
        return [n for size in self.sizes for n in self.tensor_field_bytes(size)]


def index_dtype(size: int) -> np.dtype:
    """The narrowest unsigned integer that indexes a tensor of ``size`` entries."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def kept(size: int, ratio: float) -> int:
    """Entries a sparsifier keeps of a tensor: ceil(ratio x size), at least one."""
    return max(1, min(size, int(np.ceil(ratio * size - 1e-9))))
