"""Vertical logistic regression with the Taylor loss, in plaintext and under Paillier.

Hardy et al. 2017 (arXiv:1711.10677), in the form FATE codes for several hosts
(``fate/ml/glm/hetero/coordinated_lr``). Labels s in {-1, +1}, scores z = sum_k X_k w_k (the label
party adds the intercept). The loss log(1 + e^{-sz}) is replaced by its second-order Taylor
expansion log 2 - s z / 2 + z^2 / 8, whose gradient is linear in the parties' scores:

    d = z / 4 - s / 2,    grad_k = (1 / h) X_k^T d    (h rows in the batch)

so under an additively homomorphic scheme each host sends [[u_k / 4]], the label party forms
[[d]] = u_0 / 4 - s / 2 + sum_k [[u_k / 4]] and sends it back, and every party computes
[[grad_k]] = (1 / h) X_k^T [[d]] without seeing another party's scores. Each party adds a random
mask before the coordinator decrypts (Hardy et al.; FATE's arbiter sees gradients unmasked), so
the coordinator learns only masked gradients and the parties only their own gradient. The label
party re-randomises [[d]] before sending it: the first host made the ciphertexts it is built on,
and could otherwise divide them out and read the labels. What each party still learns (its own
gradient is a linear function of the batch's labels at w = 0) is in ``disclosure.py``.

Paillier is ``phe``'s. Reals are fixed-point integers with ``scale_bits`` fractional bits, so every
ciphertext has exponent 0 and sums never re-encode; a gradient is (X_int^T d_int) / 2^(2p) / h.
The plaintext trainer computes the same gradient in float64: it is the exactness reference (the
two agree to the fixed-point rounding), and gives no privacy: scores and residuals cross in clear.

Counts of Paillier operations are returned, never timed: the simulated clock charges a configured
cost per operation so results do not depend on the machine.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

PLAIN_BYTES = 8  # float64 per value in the plaintext trainer


@dataclass(frozen=True)
class Encoding:
    """Fixed-point reals: value * 2^scale_bits, rounded to an integer."""

    scale_bits: int

    def encode(self, values: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(values, dtype=np.float64) * 2.0**self.scale_bits).astype(np.int64).astype(object)

    def decode_product(self, values) -> np.ndarray:
        """A sum of products of two encoded numbers back to reals."""
        return np.array([float(v) for v in values]) / 4.0**self.scale_bits


def ciphertext_bytes(key_bits: int) -> int:
    """A Paillier ciphertext is an integer mod n^2: 2 * key_bits bits."""
    return 2 * key_bits // 8


def signs(labels: np.ndarray) -> np.ndarray:
    """{0, 1} labels as s in {-1, +1}."""
    return 2.0 * np.asarray(labels, dtype=np.float64) - 1.0


def residual(own_scores: np.ndarray, labels: np.ndarray, other_quarter_scores: list[np.ndarray]) -> np.ndarray:
    """d = z / 4 - s / 2 in plaintext (the label party's step without encryption)."""
    return own_scores / 4.0 - signs(labels) / 2.0 + sum(other_quarter_scores, np.zeros(len(own_scores)))


def gradient(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """(1 / h) X^T d."""
    return x.T.astype(np.float64) @ d / len(d)


def taylor_loss(z: np.ndarray, labels: np.ndarray) -> float:
    """The loss the trainers minimise: mean of log 2 - s z / 2 + z^2 / 8."""
    return float(np.mean(np.log(2.0) - signs(labels) * z / 2.0 + z**2 / 8.0))


def encrypt(public_key, encoding: Encoding, values: np.ndarray, ops: Counter) -> list:
    """[[values]], one ciphertext each."""
    ops["encrypt"] += len(values)
    return [public_key.encrypt(int(v)) for v in encoding.encode(values)]


def encrypted_residual(encoding: Encoding, own_scores: np.ndarray, labels: np.ndarray,
                       others: list[list], draw: np.random.Generator, ops: Counter) -> list:
    """[[d]] = (u_0 / 4 - s / 2) + sum_k [[u_k / 4]], re-randomised before it goes back to the hosts.

    ``phe`` adds a plaintext as g^m with no randomness, so without the last step the first host,
    which made [[u_1 / 4]], would divide its own ciphertext out of [[d]] and read u_0 / 4 - s / 2,
    hence every label of the first batch (w = 0) exactly; a fresh r^n makes [[d]] a new encryption."""
    plain = encoding.encode(own_scores / 4.0 - signs(labels) / 2.0)
    total = [c + int(p) for c, p in zip(others[0], plain)]
    ops["add"] += len(total) * len(others)
    for other in others[1:]:
        total = [a + b for a, b in zip(total, other)]
    return rerandomise(total, draw, ops)


def rerandomise(ciphertexts: list, draw: np.random.Generator, ops: Counter) -> list:
    """Each ciphertext times r^n mod n^2 for a fresh r (what ``phe``'s ``obfuscate`` does, with r
    from ``draw`` so that a run repeats): the same plaintext, randomness no other party knows.
    One exponentiation each, as costly as an encryption."""
    from phe import EncryptedNumber

    ops["rerandomise"] += len(ciphertexts)
    fresh = []
    for c in ciphertexts:
        key = c.public_key
        r = int.from_bytes(draw.bytes(key.n.bit_length() // 8 + 8), "big") % (key.n - 1) + 1
        fresh.append(EncryptedNumber(key, c.ciphertext(be_secure=False) * pow(r, key.n, key.nsquare) % key.nsquare,
                                     c.exponent))
    return fresh


def encrypted_gradient(encoding: Encoding, x: np.ndarray, d: list, masks: np.ndarray, ops: Counter) -> list:
    """[[X^T d + mask]], the sum of products still scaled by 2^(2p): each column's products are
    ciphertext-times-integer exponentiations, summed by ciphertext multiplication."""
    x_int = encoding.encode(x)
    ops["mul"] += x_int.size
    ops["add"] += x_int.size
    sums = x_int.T @ np.asarray(d, dtype=object)
    return [s + int(m) for s, m in zip(sums, masks)]


def draw_masks(draw: np.random.Generator, count: int, encoding: Encoding) -> np.ndarray:
    """Random integers far larger than any gradient sum (2^(2p + 40)), hiding it from the
    coordinator."""
    bound = 2 ** (2 * encoding.scale_bits + 40)
    return np.array([int.from_bytes(draw.bytes(16), "big") % bound for _ in range(count)], dtype=object)


def unmask(decrypted: list[int], masks: np.ndarray, encoding: Encoding, rows: int) -> np.ndarray:
    """The party's own gradient from the coordinator's decryption of [[X^T d + mask]]."""
    return encoding.decode_product([int(v) - int(m) for v, m in zip(decrypted, masks)]) / rows


class Coordinator:
    """Hardy et al.'s coordinator C (FATE's arbiter): holds the Paillier private key, sees no
    data, decrypts only masked values. The key comes from the OS's randomness, never the seed:
    the plaintext results do not depend on which key it is."""

    def __init__(self, key_bits: int):
        from phe import paillier

        self.public_key, self._private_key = paillier.generate_paillier_keypair(n_length=key_bits)

    def public(self):
        return self.public_key

    def decrypt(self, ciphertexts: list) -> tuple[list[int], Counter]:
        return [self._private_key.decrypt(c) for c in ciphertexts], Counter(decrypt=len(ciphertexts))
