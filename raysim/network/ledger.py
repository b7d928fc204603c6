"""Ledger FL: a hash chain of blocks holding update digests, block production on the simulated
clock, and committee validation.

* BlockFL (Kim, Park, Bennis, Kim, arXiv:1808.03949): blocks carry the round's verified updates;
  the header points to the previous block. Here only 32-byte SHA-256 digests go on chain.
* Merkle root, pinned to RFC 6962 section 2.1 (Certificate Transparency): leaf hash
  ``SHA-256(0x00 || leaf)``, inner node ``SHA-256(0x01 || left || right)``, the left subtree the
  largest power of two below n, no duplication of odd nodes (Bitcoin's convention would give a
  different root for the same leaves), the empty tree ``SHA-256("")``.
* ``block_hash = SHA-256(header)``, the header a canonical JSON of index, previous hash, Merkle
  root, simulated timestamp and producer; editing any block breaks its own hashes or the next
  block's pointer, which :func:`verify_chain` finds.
* Proof of work as an exponential race: miner m finds a block after ``Exp(lambda_m)``; the
  winner's block reaches the others after the propagation delay delta, and a rival found before
  then forks the chain: ``P(fork | m wins) = 1 - exp(-(Lambda - lambda_m) delta)``. Nothing hashes
  nonces: FLEX-block's real nonce search burns CPU on the wall clock, the pitfall avoided here.
  A fork is not free: the height stays contested, its block orphaned, until a race ends with
  no rival, so a round waits through a geometric number of races (BlockFL's latency counts the
  block generation and propagation once per fork the same way (R)); sim/stages/chain.py charges it.
* Committee validation (BFLC, Li et al., arXiv:2004.00773): a rotating committee scores each
  update on its own validation data; the worst are rejected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import numpy as np

from raysim.seeding import Stream, rng

GENESIS_PREV = "00" * 32
COMMITTEE_DRAW, POW_DRAW = 0, 1  # first keys of Stream.LEDGER draws
RACE_CHUNK = 256  # PoW races drawn per key


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash of the leaves, in order."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    split = 1 << (len(leaves) - 1).bit_length() - 1  # largest power of two < n
    return node_hash(merkle_root(leaves[:split]), merkle_root(leaves[split:]))


def update_digest(update: np.ndarray) -> bytes:
    """SHA-256 of an update's dtype, shape and bytes (the same bytes as another dtype differ)."""
    update = np.ascontiguousarray(update)
    return hashlib.sha256(f"{update.dtype.str}{update.shape}".encode() + update.tobytes()).digest()


@dataclass(frozen=True)
class Block:
    """One block: its header fields, the update digests (hex) it commits to, and its hash."""

    index: int
    prev_hash: str
    merkle_root: str
    timestamp: float
    producer: int
    digests: tuple[str, ...]
    hash: str

    def header(self) -> bytes:
        fields = {"index": self.index, "prev_hash": self.prev_hash, "merkle_root": self.merkle_root,
                  "timestamp": self.timestamp, "producer": self.producer}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _hash_header(block: Block) -> str:
    return hashlib.sha256(block.header()).hexdigest()


def _root_of(digests: Sequence[str]) -> str:
    return merkle_root([bytes.fromhex(d) for d in digests]).hex()


def append_block(chain: Sequence[Block], digests: Sequence[bytes], timestamp: float, producer: int) -> list[Block]:
    """A new chain: ``chain`` plus one block committing to ``digests``."""
    hexes = tuple(d.hex() for d in digests)
    prev = chain[-1].hash if chain else GENESIS_PREV
    draft = Block(len(chain), prev, _root_of(hexes), float(timestamp), int(producer), hexes, "")
    return [*chain, replace(draft, hash=_hash_header(draft))]


def chain_to_json(chain: Sequence[Block]) -> str:
    return json.dumps([asdict(b) for b in chain], indent=1)


def chain_from_json(text: str) -> list[Block]:
    return [Block(**{**row, "digests": tuple(row["digests"])}) for row in json.loads(text)]


@dataclass(frozen=True)
class Verification:
    """``first_bad`` is the first block whose contents no longer match what was committed."""

    valid: bool
    first_bad: int | None = None
    reason: str = ""


def verify_chain(chain: Sequence[Block], head_hash: str | None = None) -> Verification:
    """Recomputes every Merkle root, block hash and pointer. A block edited with its own hashes
    recomputed shows as the next block's broken pointer (reported at the edited block); one
    edited with every later hash recomputed too is caught only against a trusted ``head_hash``."""
    for i, block in enumerate(chain):
        if block.index != i:
            return Verification(False, i, f"block {i} says it is block {block.index}")
        if _root_of(block.digests) != block.merkle_root:
            return Verification(False, i, f"block {i}'s digests do not match its Merkle root")
        if _hash_header(block) != block.hash:
            return Verification(False, i, f"block {i}'s header does not match its hash")
        if i == 0 and block.prev_hash != GENESIS_PREV:
            return Verification(False, 0, "block 0 does not point to the genesis hash")
        if i and block.prev_hash != chain[i - 1].hash:
            return Verification(False, i - 1, f"block {i} points to a hash that block {i - 1} no longer has")
    if head_hash is not None and (not chain or chain[-1].hash != head_hash):
        return Verification(False, 0, "the chain's head is not the trusted head: some block was rewritten with "
                                      "every later hash")
    return Verification(True)


def fork_probability(rates: Sequence[float], delay: float) -> float:
    """``sum_m (lambda_m / Lambda) (1 - exp(-(Lambda - lambda_m) delta))``."""
    rates = np.asarray(rates, dtype=np.float64)
    total = rates.sum()
    return float(np.sum(rates / total * -np.expm1(-(total - rates) * delay)))


@dataclass(frozen=True)
class PowRace:
    """One simulated PoW run: per height, when the block was found, by whom, and whether a rival
    found one within the propagation delay (``rival`` = -1 when none)."""

    found: np.ndarray
    winner: np.ndarray
    forked: np.ndarray
    rival: np.ndarray

    @property
    def fork_rate(self) -> float:
        return float(self.forked.mean())

    def time_to_finality(self, confirmations: int) -> np.ndarray:
        """Per height (those that get there), the time from the block's find until ``confirmations``
        more blocks stand on it: the usual k-confirmation finality."""
        if confirmations < 1:
            raise ValueError(f"confirmations must be >= 1, got {confirmations}")
        return self.found[confirmations:] - self.found[:-confirmations]


def pow_race(rates: Sequence[float], delay: float, blocks: int, seed: int, *, start: float = 0.0,
             first: int = 0) -> PowRace:
    """Samples ``blocks`` races, numbered from ``first``. Each race starts once every miner has the
    last block (its find time plus ``delay``); by memorylessness a miner's lead over the winner is
    again exponential, so the closed form :func:`fork_probability` holds exactly. Races are drawn
    in keyed chunks of ``RACE_CHUNK``, so races drawn one at a time (as forks call for them) are
    the same races as those drawn at once."""
    rates = np.asarray(rates, dtype=np.float64)
    if len(rates) < 1 or np.any(rates <= 0) or delay < 0 or blocks < 1:
        raise ValueError(f"pow_race needs positive miner rates, delay >= 0 and blocks >= 1 (got {rates}, {delay}, {blocks})")
    chunks = range(first // RACE_CHUNK, (first + blocks - 1) // RACE_CHUNK + 1)
    drawn = [rng(seed, Stream.LEDGER, POW_DRAW, c).exponential(1.0 / rates, size=(RACE_CHUNK, len(rates))) for c in chunks]
    times = np.concatenate(drawn)[first - chunks[0] * RACE_CHUNK:][:blocks]
    order = np.argsort(times, axis=1, kind="stable")
    ranked = np.take_along_axis(times, order, axis=1)
    second = ranked[:, 1] if len(rates) > 1 else np.full(blocks, np.inf)  # a lone miner never forks
    forked = second - ranked[:, 0] < delay
    found = start + np.cumsum(ranked[:, 0]) + delay * np.arange(blocks)
    rival = np.where(forked, order[:, min(1, len(rates) - 1)], -1)
    return PowRace(found, order[:, 0], forked, rival)


def committee(num_nodes: int, size: int, round_number: int, seed: int) -> np.ndarray:
    """This round's committee: ``size`` distinct nodes drawn from the seed and the round."""
    if not 1 <= size <= num_nodes:
        raise ValueError(f"committee_size must be in 1..{num_nodes}, got {size}")
    return np.sort(rng(seed, Stream.LEDGER, COMMITTEE_DRAW, round_number).choice(num_nodes, size, replace=False))


def score_updates(members: Sequence[int], updates: Sequence[np.ndarray],
                  evaluate: Callable[[int, np.ndarray], float]) -> np.ndarray:
    """Scores (members x updates): ``evaluate(member, update)`` on that member's validation slice."""
    return np.array([[evaluate(int(m), u) for u in updates] for m in members], dtype=np.float64)


def committee_accept(scores: np.ndarray, reject: int) -> np.ndarray:
    """Indices of the accepted updates: each update's median score over the committee, the
    ``reject`` lowest dropped (ties broken by index, lower index kept)."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if not 0 <= reject < scores.shape[1]:
        raise ValueError(f"reject must be in 0..{scores.shape[1] - 1} (one update must remain), got {reject}")
    median = np.median(scores, axis=0)
    ranked = np.argsort(-median, kind="stable")
    return np.sort(ranked[:scores.shape[1] - reject])
