"""Codecs that send a fixed share of each tensor's entries: top-k by magnitude, random-k, and a
random mask both ends regenerate from a shared seed. ``ratio`` is the share kept; a tensor keeps
ceil(ratio x size) entries, at least one, so the payload size is fixed by the layout."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from raysim.compression.codec import Codec, PerTensorCodec, index_dtype, kept


def random_k_variance(sizes: Sequence[int], ratio: float) -> float:
    """E||C(v) - v||^2 / ||v||^2 = d/k - 1 for k of d entries scaled by d/k, at the worst tensor:
    below 1 only when more than half of each tensor is kept."""
    return max(size / kept(size, ratio) - 1 for size in sizes)


class _Sparse(PerTensorCodec):
    def __init__(self, sizes: Sequence[int], *, ratio: float):
        super().__init__(sizes)
        self.ratio = ratio

    def decode_tensor(self, fields, size):
        indices, values = fields
        dense = np.zeros(size)
        dense[indices.astype(np.int64)] = values
        return dense

    def tensor_field_bytes(self, size):
        k = kept(size, self.ratio)
        return (k * index_dtype(size).itemsize, 4 * k)


class TopK(_Sparse):
    """Top-k by magnitude (|v_i|, so large negative entries are kept: p2pfl's signed
    argpartition drops them). Biased, contracting: ||v - topk(v)||^2 <= (1 - k/d) ||v||^2;
    pair it with error feedback (Stich et al. 2018, arXiv:1809.07599). Sends the kept
    entries' indices (the narrowest unsigned type for the tensor) and float32 values."""

    name = "topk"

    def encode_tensor(self, values, rng):
        k = kept(values.size, self.ratio)
        order = np.argsort(-np.abs(values), kind="stable")[:k]  # ties: the lower index, deterministically
        indices = np.sort(order)
        return [indices.astype(index_dtype(values.size)), values[indices].astype(np.float32)]


class RandomK(_Sparse):
    """Random-k scaled by d/k (Konecny et al. 2016, arXiv:1610.05492; Stich et al. 2018):
    a uniform k-subset, each kept value times d/k, so E[C(v)] = v and
    E||C(v) - v||^2 = (d/k - 1) ||v||^2. Sends indices and values, like top-k."""

    name = "randk"
    unbiased = True

    def encode_tensor(self, values, rng):
        k = kept(values.size, self.ratio)
        indices = np.sort(rng.choice(values.size, size=k, replace=False))
        return [indices.astype(index_dtype(values.size)), (values[indices] * (values.size / k)).astype(np.float32)]

    def variance_bound(self):
        return random_k_variance(self.sizes, self.ratio)


class SharedMask(Codec):
    """Seed-shared random mask (Konecny et al. 2016, arXiv:1610.05492, "structured updates"):
    random-k whose positions the server regenerates from an 8-byte seed, so only the scaled
    values and the seed travel (no indices). Unbiased, as random-k."""

    name = "mask"
    unbiased = True

    def __init__(self, sizes: Sequence[int], *, ratio: float):
        super().__init__(sizes)
        self.ratio = ratio

    def variance_bound(self):
        return random_k_variance(self.sizes, self.ratio)

    def positions(self, seed: int, tensor: int, size: int) -> np.ndarray:
        return np.sort(np.random.default_rng([seed, tensor]).choice(size, size=kept(size, self.ratio), replace=False))

    def encode(self, delta, rng):
        seed = int(rng.integers(0, 2 ** 63))
        fields = [np.array([seed], np.uint64)]
        for tensor, values in enumerate(self.tensors(delta)):
            k = kept(values.size, self.ratio)
            fields.append((values[self.positions(seed, tensor, values.size)] * (values.size / k)).astype(np.float32))
        return fields

    def decode(self, fields):
        seed = int(fields[0][0])
        if len(fields) != 1 + len(self.sizes):
            raise ValueError(f"{self.name}: {len(fields)} fields for {len(self.sizes)} tensors")
        parts = []
        for tensor, (size, values) in enumerate(zip(self.sizes, fields[1:])):
            dense = np.zeros(size)
            dense[self.positions(seed, tensor, size)] = values
            parts.append(dense)
        return np.concatenate(parts)

    def field_bytes(self):
        return [8, *(4 * kept(size, self.ratio) for size in self.sizes)]
