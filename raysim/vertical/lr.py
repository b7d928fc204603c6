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

``hide_gradients`` (the functions at the end) closes what the protocol gives away: every party's
weights stay encrypted under the coordinator's key, its update is computed homomorphically and
rescaled by the coordinator under a mask, so no party ever holds a plaintext gradient or weight.

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
    return wide_masks(draw, count, 2 * encoding.scale_bits + 40, size=16)


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

    def rescale(self, ciphertexts: list, bits: int) -> tuple[list, Counter]:
        """hide_gradients: [[round(v / 2^bits)]] for masked v, encrypted afresh (OS randomness)
        so that the party cannot tell its ciphertext from any other; it sees the masked v only."""
        plain, ops = self.decrypt(ciphertexts)
        ops["encrypt"] += len(plain)
        return [self.public_key.encrypt(v) for v in rounded_shift(plain, bits)], ops


# --- hide_gradients: no party ever holds a plaintext gradient or weight -------------------------
#
# Every party (the label party too) keeps its weights only as [[w_k]] under the coordinator's key,
# at scale 2^p. Scores are products X_int [[w]] at scale 2^(2p); the label party forms
# [[4d]] = [[z]] - 2s 2^(2p) (4d: no division), and a party's update
#     w' = (1 - lr l2) w - lr / (4h) X^T (4d)
# is one integer expression at scale 2^(5p): [[w]] a_j + [[X^T 4d]] (-c), with a_j and c real
# coefficients encoded at scale 2^(4p). Paillier cannot divide, so the party masks it, the
# coordinator decrypts, divides by 2^(4p) with rounding and encrypts the result afresh, and the
# party subtracts its rescaled mask. The label party's weights are encrypted too: were they
# plain, w' - w would be its gradient, and through it the hosts' scores of a small batch. A host's
# [[u_k]] needs no re-randomisation: it is built on the coordinator's fresh [[w_k]], which the
# label party never sees, so it has nothing to divide out ([[4d]] is re-randomised as before).

MARGIN_BITS = 40  # a mask exceeds the value it hides by 2^40: statistical distance 2^-40


def rescale_bits(encoding: Encoding) -> int:
    """The update is at scale 2^(5p); the weights at 2^p: the coordinator divides by 2^(4p)."""
    return 4 * encoding.scale_bits


def update_coefficients(encoding: Encoding, learning_rate: float, l2: float, rows: int,
                        columns: int, intercept: bool) -> tuple[np.ndarray, int]:
    """(a_j, c): integers with w' 2^(5p) = a_j (w 2^p) - c (X^T 4d 2^(3p)): a_j = (1 - lr l2) 2^(4p)
    (the intercept, last, has no L2), c = lr / (4h) 2^(2p), whose rounding is ~1e-9 relative."""
    decay = np.full(columns, 1.0 - learning_rate * l2)
    if intercept:
        decay[-1] = 1.0
    return (np.array([round(a * 2 ** rescale_bits(encoding)) for a in decay], dtype=object),
            round(learning_rate / (4.0 * rows) * 4**encoding.scale_bits))


def encrypted_scores(encoding: Encoding, x: np.ndarray, weights: list, ops: Counter) -> list:
    """[[X w]] at scale 2^(2p): row by row, ciphertext x integer products summed."""
    x_int = encoding.encode(x)
    ops["mul"] += x_int.size
    ops["add"] += x_int.size
    return list(x_int @ np.asarray(weights, dtype=object))


def hidden_residual(encoding: Encoding, own: list, labels: np.ndarray, others: list[list],
                    draw: np.random.Generator, ops: Counter) -> list:
    """[[4d]] = [[z]] - 2 s 2^(2p) at scale 2^(2p), re-randomised (as ``encrypted_residual``):
    every score in it is encrypted, the label party's own too."""
    shift = [int(v) for v in -2 * signs(labels).astype(np.int64) * 4**encoding.scale_bits]
    total = [c + s for c, s in zip(own, shift)]
    for other in others:
        total = [a + b for a, b in zip(total, other)]
    ops["add"] += len(total) * (len(others) + 1)
    return rerandomise(total, draw, ops)


def wide_masks(draw: np.random.Generator, count: int, bits: int, size: int = 0) -> np.ndarray:
    """Uniform integers below 2^bits (``bits`` = the value's bits + MARGIN_BITS), each from
    ``size`` random bytes (8 more than the bits need, so the modulo's bias is below 2^-64)."""
    size = size or bits // 8 + 8
    return np.array([int.from_bytes(draw.bytes(size), "big") % 2**bits for _ in range(count)], dtype=object)


def update_bits(encoding: Encoding) -> int:
    """A masked update's bits: the value is below 2^(5p + 16) for weights and gradients up to 2^16."""
    return 5 * encoding.scale_bits + 16 + MARGIN_BITS


def masked_update(encoding: Encoding, x: np.ndarray, d: list, weights: list, coefficients: tuple[np.ndarray, int],
                  masks: np.ndarray, ops: Counter) -> list:
    """[[a_j w_j - c (X^T 4d)_j + m_j]]: the update at scale 2^(5p), masked for the coordinator."""
    a, c = coefficients
    x_int = encoding.encode(x)
    ops["mul"] += x_int.size + 2 * len(weights)
    ops["add"] += x_int.size + 2 * len(weights)
    sums = x_int.T @ np.asarray(d, dtype=object)
    return [w * int(aj) + s * (-c) + int(m) for w, aj, s, m in zip(weights, a, sums, masks)]


def rounded_shift(values, bits: int) -> list[int]:
    """round(v / 2^bits), half up, on integers (no float: v has ~150 bits)."""
    return [(int(v) + (1 << (bits - 1))) >> bits for v in values]


def unmask_update(rescaled: list, masks: np.ndarray, bits: int, ops: Counter) -> list:
    """[[w']] = [[round((u + m) / 2^bits)]] - round(m / 2^bits): within one unit of 2^-p of
    u / 2^bits (m = q 2^bits + r: the two roundings differ from u / 2^bits + r / 2^bits and
    r / 2^bits by at most 1/2 each). A plaintext addition, charged as one."""
    ops["add"] += len(rescaled)
    return [c - r for c, r in zip(rescaled, rounded_shift(masks, bits))]


def score_bits(encoding: Encoding) -> int:
    """A masked score z 2^(2p), |z| < 2^16."""
    return 2 * encoding.scale_bits + 16 + MARGIN_BITS


def unmask_scores(decrypted: list[int], masks: np.ndarray, encoding: Encoding) -> np.ndarray:
    """z from the coordinator's decryption of [[z 2^(2p) + m]]."""
    return encoding.decode_product([int(v) - int(m) for v, m in zip(decrypted, masks)])
