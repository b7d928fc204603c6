"""ECDH private set intersection over Curve25519 (the protocol of FATE's ``psi/ecdh``).

Each party hashes its ids to curve points and masks them with a secret scalar; scalar
multiplication commutes, a(bH(x)) = b(aH(x)), so doubly masked values are equal exactly when the
ids are, and a party that sees only masked values learns nothing about ids it does not hold
(DDH in the random-oracle model, semi-honest parties). Both set sizes and the intersection are
revealed to the parties, nothing else.

The scalar multiplication is ``cryptography``'s X25519 (``exchange`` takes any 32-byte
u-coordinate); H is SHA-256 of the id's text, used directly as a u-coordinate. That is not a
standard hash-to-curve (RFC 9380), which ``cryptography`` does not offer; the commuting property
the protocol needs holds for every input that is not of small order, and those (an all-zero
result, about one in 2^250) are refused by ``cryptography`` with ValueError.

Traffic: |X| + |Y| + |X| points of 32 bytes for a pair of parties (plus the matched positions the
label party sends back, 8 bytes each).
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

POINT_BYTES = 32
INDEX_BYTES = 8
_DOMAIN = b"raysim-psi-v1:"


def new_key(secret: bytes) -> X25519PrivateKey:
    """A party's secret scalar from 32 bytes (drawn from the run's seed: the simulation is
    reproducible; a deployment would draw them from the OS)."""
    return X25519PrivateKey.from_private_bytes(secret)


def hash_to_point(ident: object) -> bytes:
    """H(id): SHA-256 of the id's text under a domain prefix, as a 32-byte u-coordinate."""
    return hashlib.sha256(_DOMAIN + str(ident).encode()).digest()


def blind(key: X25519PrivateKey, points: Iterable[bytes]) -> list[bytes]:
    """Multiplies each point by the party's secret scalar (the first or the second mask)."""
    return [key.exchange(X25519PublicKey.from_public_bytes(p)) for p in points]


def mask_ids(key: X25519PrivateKey, ids: Sequence[object]) -> list[bytes]:
    """The first mask: {k H(x)} in the order of ``ids``."""
    return blind(key, (hash_to_point(i) for i in ids))


def match(mine: Sequence[bytes], theirs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in ``mine``, in ``theirs``) of equal doubly masked values, in ``mine``'s order.

    Equal values inside one list are one id held twice: only its first position is kept, so the
    intersection is a set, as the protocol defines it.
    """
    where = {}
    for j, value in enumerate(theirs):
        where.setdefault(value, j)
    seen, left, right = set(), [], []
    for i, value in enumerate(mine):
        if value in where and value not in seen:
            seen.add(value)
            left.append(i)
            right.append(where[value])
    return np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)


def intersect(ids_a: Sequence[object], ids_b: Sequence[object], *, secret_a: bytes, secret_b: bytes) -> list[object]:
    """The whole two-party protocol in one process (tests, the benchmark): A's ids in the
    intersection, in A's order. The parties' shuffles are left out: they hide which of A's
    values B double-masked, not what the intersection is."""
    key_a, key_b = new_key(secret_a), new_key(secret_b)
    a_once, b_once = mask_ids(key_a, ids_a), mask_ids(key_b, ids_b)
    a_twice, b_twice = blind(key_b, a_once), blind(key_a, b_once)
    left, _ = match(a_twice, b_twice)
    return [ids_a[i] for i in left]
