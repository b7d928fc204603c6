"""Codecs that keep every entry at fewer bits: the identity (fp32), fp16 and bf16 casts,
deterministic int-k, QSGD and the scaled sign."""

from __future__ import annotations

import math
from typing import ClassVar, Sequence

import numpy as np

from raysim.compression.codec import PerTensorCodec
from raysim.compression.wire import pack_bits, packed_size, unpack_bits


class _Cast(PerTensorCodec):
    """Every entry cast to ``value_dtype`` (round to nearest even), travelling as ``wire_dtype``."""

    value_dtype: ClassVar[type]
    wire_dtype: ClassVar[type]

    def encode_tensor(self, values, rng):
        return [values.astype(np.float32).astype(self.value_dtype).view(self.wire_dtype)]

    def decode_tensor(self, fields, size):
        return fields[0].view(self.value_dtype).astype(np.float64)

    def tensor_field_bytes(self, size):
        return (np.dtype(self.wire_dtype).itemsize * size,)


class Float32(_Cast):
    """The update as float32, framed: lossless for float32 updates, the control for the others."""

    name = "fp32"
    unbiased = True
    value_dtype = wire_dtype = np.float32


class Half(_Cast):
    """IEEE binary16: 2 bytes an entry, relative error <= 2^-11 in the normal range; below 2^-25
    an entry becomes 0 and above 65,504 it becomes inf (the update check then rejects it).
    FLSim's ``HalfPrecisionChannel``."""

    name = "fp16"
    value_dtype = wire_dtype = np.float16


class BFloat16(_Cast):
    """bfloat16 (ml_dtypes): fp32's exponent range with 8 bits of mantissa (relative error
    <= 2^-8); travels as its uint16 bit pattern."""

    name = "bf16"
    wire_dtype = np.uint16

    @property
    def value_dtype(self) -> type:
        """ml_dtypes' bfloat16, imported by a bf16 run only: importing ml_dtypes costs 0.65 s of
        CPU, and every ``raysim`` process imports this module (the scenario names the codecs)."""
        import ml_dtypes

        return ml_dtypes.bfloat16


class IntK(PerTensorCodec):
    """Deterministic affine int-k per tensor with an integer zero point, as PyTorch's and FLSim's
    MinMax observers do: the range [lo, hi] is widened to hold 0 (lo = min(min, 0), hi =
    max(max, 0)), scale = (hi - lo) / (2^k - 1), zp = round(-lo / scale) in 0..2^k - 1,
    q = clamp(round(x / scale) + zp, 0, 2^k - 1), x' = (q - zp) scale. 0 is a grid point
    (q = zp), so the zeros of a sparse update come back exactly 0 (a grid from the minimum
    instead turns each into a small offset, which the server sums over every client); and
    |x - x'| <= scale / 2 over the range. Biased (rounding is deterministic). Sends the scale
    (float32), the zero point (uint16: k <= 16) and the codes packed at k bits."""

    name = "int"

    def __init__(self, sizes: Sequence[int], *, bits: int):
        super().__init__(sizes)
        self.bits = bits

    def encode_tensor(self, values, rng):
        top = 2 ** self.bits - 1
        low, high = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
        scale = np.float32((high - low) / top)
        zero, codes = 0, np.zeros(values.size, np.uint32)  # scale 0: every entry 0 (or below float32's range)
        if scale > 0:
            zero = int(np.clip(np.rint(-low / float(scale)), 0, top))
            codes = np.clip(np.rint(values / float(scale)) + zero, 0, top)
        return [np.array([scale], np.float32), np.array([zero], np.uint16), pack_bits(codes, self.bits)]

    def decode_tensor(self, fields, size):
        scale, zero = float(fields[0][0]), int(fields[1][0])
        return (unpack_bits(fields[2], self.bits, size).astype(np.int64) - zero) * scale

    def tensor_field_bytes(self, size):
        return (4, 2, packed_size(size, self.bits))


class QSGD(PerTensorCodec):
    """QSGD (Alistarh et al. 2017, arXiv:1610.02132), s levels, per tensor:
    Q(v)_i = ||v||_2 sgn(v_i) xi_i, xi_i = l/s or (l + 1)/s with P = s|v_i|/||v||_2 - l, so
    E[Q(v)] = v. Normalised by the L2 norm, not the max (FedLab's deviation). Sends the norm
    (float32, rounded up so no |v_i| exceeds it) and 1 + ceil(log2(s + 1)) bits an entry."""

    name = "qsgd"
    unbiased = True

    def __init__(self, sizes: Sequence[int], *, levels: int):
        super().__init__(sizes)
        self.levels = levels
        self.bits = 1 + math.ceil(math.log2(levels + 1))

    def variance_bound(self):
        """The paper's lemma, min(d / s^2, sqrt(d) / s), at the largest tensor: below 1 only when
        s^2 > d."""
        return max(min(d / self.levels ** 2, math.sqrt(d) / self.levels) for d in self.sizes)

    def encode_tensor(self, values, rng):
        norm = np.float32(np.linalg.norm(values))
        if float(norm) < np.linalg.norm(values):
            norm = np.nextafter(norm, np.float32(np.inf))
        if norm == 0:
            return [np.array([0.0], np.float32), np.zeros(packed_size(values.size, self.bits), np.uint8)]
        scaled = self.levels * np.abs(values) / float(norm)
        level = np.floor(scaled)
        level = np.minimum(level + (rng.random(values.size) < scaled - level), self.levels)
        codes = level.astype(np.uint32) * 2 + (values < 0)
        return [np.array([norm], np.float32), pack_bits(codes, self.bits)]

    def decode_tensor(self, fields, size):
        codes = unpack_bits(fields[1], self.bits, size)
        sign = 1.0 - 2.0 * (codes & 1)
        return float(fields[0][0]) * sign * (codes >> 1) / self.levels

    def tensor_field_bytes(self, size):
        return (4, packed_size(size, self.bits))


class ScaledSign(PerTensorCodec):
    """Scaled sign (EF-SignSGD, Karimireddy et al. 2019, arXiv:1901.09847):
    C(v) = (||v||_1 / d) sign(v) per tensor, 1 bit an entry plus a float32 scale; 0 is sent as
    +1 (a 1-bit code has no third value). Biased: use it with error feedback."""

    name = "sign"

    def encode_tensor(self, values, rng):
        return [np.array([np.abs(values).mean()], np.float32), np.packbits(values < 0)]

    def decode_tensor(self, fields, size):
        negative = np.unpackbits(fields[1], count=size)
        return float(fields[0][0]) * (1.0 - 2.0 * negative)

    def tensor_field_bytes(self, size):
        return (4, packed_size(size, 1))
