"""The ring secure aggregation sums in, ``Z_R`` with ``R = 2**modulus_bits``: quantising float
updates into it, and the pseudo-random masks that hide them there.

Kept apart from the protocol (secagg.py), whose parties only add, mask and unmask ring vectors.

* Vectors are held as ``uint64``: numpy's wrap-around modulo ``2**64`` is exact modulo ``R``.
* Quantisation uses unbiased stochastic rounding (explicit generator), so the rounding error
  averages out over clients instead of adding a bias.
* PRG: AES-256 in CTR mode (zero nonce; every seed expands one stream) keyed by the 32-byte
  seed, read as little-endian ``uint64`` and reduced modulo ``R`` by masking, which is exactly
  uniform because ``R`` divides ``2**64``.
"""

from __future__ import annotations

import math

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MODULUS_BITS = 32
"""Default ring size exponent: sums live in ``Z_(2**32)``."""

SEED_BYTES = 32
"""Size of a mask seed (an AES-256 key)."""


def check_bits(name: str, bits: int, high: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= high:
        raise ValueError(f"{name} must be an int in [1, {high}], got {bits!r}")


def sum_fits(num_clients: int, bits: int, modulus_bits: int = MODULUS_BITS) -> bool:
    """Whether ``num_clients`` values of ``bits`` bits each sum below ``2**modulus_bits``, so
    the masked sum in the ring cannot wrap around."""
    return num_clients * ((1 << bits) - 1) < 1 << modulus_bits


def _check_clip_range(clip_range: float) -> None:
    if not (math.isfinite(clip_range) and clip_range > 0):
        raise ValueError(f"clip_range must be a finite number > 0, got {clip_range!r}")


def quantize(delta: np.ndarray, clip_range: float, bits: int, *, rng: np.random.Generator) -> np.ndarray:
    """Map a float update to integers in ``[0, 2**bits - 1]`` for the ring.

    Values are clipped to ``[-c, c]``, shifted to ``[0, 2c]`` and scaled to
    ``2**bits - 1`` levels, then rounded up with probability equal to the
    fractional part (stochastic rounding), so ``E[dequantize(quantize(x))] = clip(x)``.

    Args:
        delta: Flat float update.
        clip_range: ``c`` (> 0).
        bits: Quantisation bits in ``[1, 63]``. Pick ``bits + ceil(log2(n)) <=
            modulus_bits`` so the sum of ``n`` clients cannot wrap around.
        rng: Source of the rounding randomness.

    Returns:
        ``uint64`` array of levels.
    """
    _check_clip_range(clip_range)
    check_bits("bits", bits, 63)
    levels = (1 << bits) - 1
    scaled = (np.clip(np.asarray(delta, dtype=np.float64), -clip_range, clip_range) + clip_range) * (
        levels / (2.0 * clip_range)
    )
    floor = np.floor(scaled)
    rounded = floor + (rng.random(scaled.shape) < scaled - floor)
    return np.minimum(rounded, levels).astype(np.uint64)


def dequantize(
    sum_ints: np.ndarray, num_clients: int, clip_range: float, bits: int, *, modulus_bits: int = MODULUS_BITS
) -> np.ndarray:
    """Turn the ring sum of ``num_clients`` quantised updates back into floats.

    Each summand carries an offset of ``c`` (from the shift to ``[0, 2c]``), so
    ``n * c`` is subtracted. The result equals the sum of the individually
    dequantised values (up to float rounding).

    Args:
        sum_ints: Sum of :func:`quantize` outputs (mod ``2**modulus_bits``).
        num_clients: Number of summands ``n`` (>= 1).
        clip_range: ``c`` used by :func:`quantize`.
        bits: ``bits`` used by :func:`quantize`.
        modulus_bits: Ring size; used to reject settings whose sum may have wrapped.

    Raises:
        ValueError: If ``n * (2**bits - 1) >= 2**modulus_bits``.
    """
    _check_clip_range(clip_range)
    check_bits("bits", bits, 63)
    check_bits("modulus_bits", modulus_bits, 64)
    if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
        raise ValueError(f"num_clients must be an int >= 1, got {num_clients!r}")
    levels = (1 << bits) - 1
    if not sum_fits(num_clients, bits, modulus_bits):
        raise ValueError(
            f"bits={bits} with num_clients={num_clients} can overflow modulus_bits={modulus_bits}: "
            f"need num_clients * (2**bits - 1) < 2**modulus_bits"
        )
    return np.asarray(sum_ints, dtype=np.uint64).astype(np.float64) * (2.0 * clip_range / levels) - (
        num_clients * clip_range
    )


def expand_mask(seed: bytes, size: int, modulus_bits: int = MODULUS_BITS) -> np.ndarray:
    """Expand a 32-byte seed to ``size`` uniform elements of ``Z_(2**modulus_bits)``.

    AES-256-CTR keystream under the seed, as little-endian ``uint64`` masked to
    ``modulus_bits`` bits. Deterministic, so both ends of a pair (and the server,
    from a reconstructed key) produce the same mask.
    """
    if len(seed) != SEED_BYTES:
        raise ValueError(f"seed must be {SEED_BYTES} bytes, got {len(seed)}")
    check_bits("modulus_bits", modulus_bits, 64)
    keystream = Cipher(algorithms.AES(seed), modes.CTR(bytes(16))).encryptor().update(bytes(8 * size))
    return np.frombuffer(keystream, dtype="<u8").astype(np.uint64) & ring_mask(modulus_bits)


def ring_mask(modulus_bits: int) -> np.uint64:
    return np.uint64((1 << modulus_bits) - 1)
