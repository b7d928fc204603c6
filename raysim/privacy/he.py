"""Additively homomorphic aggregation of model updates with CKKS (TenSEAL).

Sources: J. H. Cheon, A. Kim, M. Kim, Y. Song, "Homomorphic Encryption for
Arithmetic of Approximate Numbers", ASIACRYPT 2017 (IACR ePrint 2016/421), the
CKKS scheme; A. Benaissa et al., "TenSEAL: A Library for Encrypted Tensor
Operations Using Homomorphic Encryption" (arXiv:2104.03152).

Clients encrypt their (weight-scaled) updates under a key holder's public key;
the server adds ciphertexts using a *public* context (no secret key: it cannot
decrypt anything, including the sum); the key holder decrypts the sum and
divides by the total weight. Who holds the secret key (a trusted party, or all
clients sharing one key) is the deployment's choice; the server never does.

Parameters follow TenSEAL's tutorial defaults for 128-bit security: ring
degree 8192 (4096 slots per ciphertext, so updates are chunked), coefficient
moduli [60, 40, 40, 60] bits and scale ``2**40``, which leaves at least 20 bits
of integer headroom (first prime minus scale) and about 1e-7 absolute error on
sums of values in [-1, 1].
Only additions are performed, so no relinearisation or Galois keys are shipped.

Encryption randomness comes from SEAL's internal CSPRNG; it is what makes the
ciphertexts semantically secure and only perturbs results at CKKS precision.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tenseal as ts

DEGREE = 8192
MODULI = (60, 40, 40, 60)


def ciphertext_bytes(num_values: int, *, poly_modulus_degree: int = DEGREE,
                     coeff_mod_bit_sizes: Sequence[int] = MODULI) -> int:
    """Wire size of one client's encrypted update, for the simulated upload time.

    A fresh CKKS ciphertext is two polynomials of ``N`` coefficients modulo each data prime
    (all primes but the special last one), 8 bytes per coefficient: 393,216 B per chunk of
    ``N / 2`` values with the defaults. That is the uncompressed size, about 18% above
    SEAL's zstd-compressed serialisation, whose length varies with the encryption randomness;
    a formula keeps the simulated clock a function of the scenario alone.
    """
    chunks = math.ceil(num_values / (poly_modulus_degree // 2))
    return chunks * 2 * poly_modulus_degree * (len(coeff_mod_bit_sizes) - 1) * 8


class HEContext:
    """The key holder's CKKS context (it contains the secret key).

    Args:
        poly_modulus_degree: Ring degree ``N``; a ciphertext holds ``N / 2`` values.
        coeff_mod_bit_sizes: Bit sizes of the coefficient modulus chain.
        scale_bits: ``log2`` of the encoding scale.
    """

    def __init__(
        self,
        *,
        poly_modulus_degree: int = DEGREE,
        coeff_mod_bit_sizes: Sequence[int] = MODULI,
        scale_bits: int = 40,
    ) -> None:
        if poly_modulus_degree not in (4096, 8192, 16384, 32768):
            raise ValueError(
                f"poly_modulus_degree must be one of 4096, 8192, 16384, 32768, got {poly_modulus_degree!r}"
            )
        self._context = ts.context(
            ts.SCHEME_TYPE.CKKS, poly_modulus_degree=poly_modulus_degree, coeff_mod_bit_sizes=list(coeff_mod_bit_sizes)
        )
        self._context.global_scale = 2.0**scale_bits
        self.slot_count = poly_modulus_degree // 2

    def public_context(self) -> bytes:
        """Serialised context for the server: public key only, no secret key."""
        return self._context.serialize(
            save_public_key=True, save_secret_key=False, save_galois_keys=False, save_relin_keys=False
        )

    def encrypt(self, vector: np.ndarray) -> list[bytes]:
        """Encrypt a flat vector as serialised ciphertexts of at most ``slot_count`` values each."""
        vector = np.asarray(vector, dtype=np.float64)
        if vector.ndim != 1 or vector.size == 0:
            raise ValueError(f"vector must be a non-empty 1-D array, got shape {vector.shape}")
        return [
            ts.ckks_vector(self._context, vector[start : start + self.slot_count].tolist()).serialize()
            for start in range(0, vector.size, self.slot_count)
        ]

    def decrypt(self, ciphertexts: Sequence[bytes]) -> np.ndarray:
        """Decrypt chunked ciphertexts (e.g. the server's sum) back into one flat vector."""
        return np.concatenate(
            [np.asarray(ts.ckks_vector_from(self._context, chunk).decrypt(), dtype=np.float64) for chunk in ciphertexts]
        )


def add_encrypted(public_context: bytes, client_ciphertexts: Sequence[Sequence[bytes]]) -> list[bytes]:
    """Server side: add the clients' chunked ciphertexts, chunk by chunk.

    Args:
        public_context: :meth:`HEContext.public_context` output; no secret key.
        client_ciphertexts: One list of chunks per client, all of equal length.

    Returns:
        Serialised chunks of the encrypted sum.
    """
    if not client_ciphertexts:
        raise ValueError("client_ciphertexts must hold at least one client")
    chunks = len(client_ciphertexts[0])
    if any(len(client) != chunks for client in client_ciphertexts):
        raise ValueError("every client must send the same number of ciphertext chunks")
    context = ts.context_from(public_context)
    sums = [ts.ckks_vector_from(context, chunk) for chunk in client_ciphertexts[0]]
    for client in client_ciphertexts[1:]:
        for index, chunk in enumerate(client):
            sums[index] += ts.ckks_vector_from(context, chunk)
    return [total.serialize() for total in sums]


@dataclass(frozen=True)
class HEAggregation:
    """Result and cost of one encrypted weighted average.

    Attributes:
        average: Decrypted ``sum_i w_i x_i / sum_i w_i``.
        ciphertext_bytes: Upload of one client (all its chunks).
        plaintext_bytes: The same update sent in the clear as float64.
        public_context_bytes: Size of the server's public context.
        encrypt_seconds: Wall time of all clients' encryption.
        aggregate_seconds: Wall time of the server's additions (incl. deserialising).
        decrypt_seconds: Wall time of the key holder's decryption and division.
    """

    average: np.ndarray
    ciphertext_bytes: int
    plaintext_bytes: int
    public_context_bytes: int
    encrypt_seconds: float
    aggregate_seconds: float
    decrypt_seconds: float


def he_weighted_average(
    context: HEContext, updates: Sequence[np.ndarray], weights: Sequence[float]
) -> HEAggregation:
    """Weighted FedAvg under encryption.

    Clients multiply their update by their weight before encrypting, the
    server only adds, and the key holder divides the decrypted sum by the total
    weight (the weights are public to the server in FedAvg anyway).

    Args:
        context: The key holder's context.
        updates: Flat updates, all of one size.
        weights: Positive weight per update (e.g. number of examples).
    """
    if len(updates) != len(weights) or not updates:
        raise ValueError(
            f"updates and weights must be non-empty and of equal length, got {len(updates)} and {len(weights)}"
        )
    if not all(math.isfinite(w) and w > 0 for w in weights):
        raise ValueError(f"weights must be finite numbers > 0, got {list(weights)}")
    updates = [np.asarray(u, dtype=np.float64) for u in updates]
    if any(u.shape != updates[0].shape for u in updates):
        raise ValueError("updates must all have the same shape")

    start = time.perf_counter()
    encrypted = [context.encrypt(w * u) for u, w in zip(updates, weights)]
    encrypted_at = time.perf_counter()
    public = context.public_context()
    total = add_encrypted(public, encrypted)
    summed_at = time.perf_counter()
    average = context.decrypt(total) / float(sum(weights))
    done = time.perf_counter()
    return HEAggregation(
        average=average,
        ciphertext_bytes=sum(len(chunk) for chunk in encrypted[0]),
        plaintext_bytes=updates[0].nbytes,
        public_context_bytes=len(public),
        encrypt_seconds=encrypted_at - start,
        aggregate_seconds=summed_at - encrypted_at,
        decrypt_seconds=done - summed_at,
    )
