"""Vertical FL on the simulated clock: the order of messages, their bytes and their time.

The parties run wherever the runtime put them (Ray actors, or objects in this process for
tests); this module only sends them requests through ``calls`` and charges each message to the
simulated clock and to its sender and receiver. A *phase* is one step of a protocol in which the
parties work side by side: it lasts the longest party's Paillier time plus the longest
transfer (``transfer_s``, the one transfer-time formula: latency + 8 * bytes / bandwidth).
Plaintext compute is not charged: it is small next to HE and the network, and charging it would
tie results to the machine. HE time is a configured cost per operation, never wall time.

Protocols: ECDH-PSI alignment (``align``), vertical logistic regression in plaintext or under
Paillier (``train_lr``, Hardy et al. 2017, arXiv:1711.10677) and SplitNN (``train_splitnn``,
arXiv:1812.00564). The label party is ``names[0]``; the coordinator, for Paillier, ``"coordinator"``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from raysim.network.transport import mbps_to_bps, transfer_s
from raysim.seeding import Stream, rng
from raysim.sim.kernel import table_rows
from raysim.sim.kernel.clock import SimClock
from raysim.vertical import lr, netshape, psi

Calls = Callable[[Sequence[tuple[str, str, tuple]]], list]  # (party, method, args) in parallel
COORDINATOR = "coordinator"


@dataclass(frozen=True, kw_only=True)
class Network:
    """One link type between every pair of parties."""

    bandwidth_mbps: float = 100.0
    latency_s: float = 0.01


@dataclass(frozen=True, kw_only=True)
class HeCost:
    """Simulated seconds per Paillier operation. Defaults: ``phe`` 1.5 in pure Python (no gmpy2),
    1,024-bit keys, integer operands, the fastest of repeated timings on the shared 2-core
    development machine (other jobs running: an idle core is faster). Set ``[vertical.he]`` for
    other hardware or key sizes (an exponentiation costs about the cube of the key length)."""

    encrypt_s: float = 1.1e-2
    decrypt_s: float = 2.8e-3
    mul_s: float = 7.4e-4  # ciphertext x fixed-point integer
    add_s: float = 1.2e-5  # ciphertext + ciphertext
    rerandomise_s: float = 1.1e-2  # ciphertext x r^n mod n^2: the exponentiation of an encryption

    def seconds(self, ops: Counter) -> float:
        return sum(getattr(self, f"{op}_s") * count for op, count in ops.items())


class VerticalLedger:
    """The simulated clock (a :class:`SimClock` with no events, moved forward phase by phase)
    with bytes and HE seconds per party."""

    def __init__(self, network: Network, cost: HeCost):
        self.network, self.cost = network, cost
        self.clock = SimClock()
        self.he_seconds = 0.0
        self.sent: Counter = Counter()
        self.received: Counter = Counter()
        self.ops: Counter = Counter()
        self.reported = 0  # bytes already in a results row

    @property
    def now(self) -> float:
        return self.clock.now

    def phase(self, messages: Sequence[tuple[str, str, int]] = (), ops: dict[str, Counter] | None = None) -> None:
        he = {party: self.cost.seconds(count) for party, count in (ops or {}).items()}
        for count in (ops or {}).values():
            self.ops.update(count)
        self.he_seconds += sum(he.values())
        bps = mbps_to_bps(self.network.bandwidth_mbps)
        wire = [transfer_s(size, bps, self.network.latency_s) for _, _, size in messages]
        spent = max(he.values(), default=0.0) + max(wire, default=0.0)
        self.clock.advance_to(self.clock.now + spent)
        for src, dst, size in messages:
            self.sent[src] += size
            self.received[dst] += size


@dataclass(frozen=True)
class Alignment:
    intersection: int
    train_rows: int
    test_rows: int
    duplicates: int


def align(calls: Calls, names: list[str], ledger: VerticalLedger) -> Alignment:
    """ECDH-PSI between the label party and every other party (psi.py; FATE's flow): both
    first-mask their ids, each double-masks the other's, the label party joins and tells each
    party which of its rows are in the intersection, in one shared order; then the held-out split."""
    label, others = names[0], names[1:]
    first = calls([(n, "psi_first", ()) for n in names])
    ledger.phase([(label, o, psi.POINT_BYTES * len(first[0])) for o in others]
                 + [(o, label, psi.POINT_BYTES * len(f)) for o, f in zip(others, first[1:])])
    mine_twice = calls([(o, "psi_second", (first[0],)) for o in others])
    theirs_twice = calls([(label, "psi_second", (f,)) for f in first[1:]])
    ledger.phase([(o, label, psi.POINT_BYTES * len(t)) for o, t in zip(others, mine_twice)])
    positions = calls([(label, "psi_join", (mine_twice, theirs_twice))])[0]
    calls([(o, "psi_align", (p,)) for o, p in zip(others, positions)])
    train, test = calls([(label, "split_rows", ())])[0]
    calls([(o, "set_split", (train, test)) for o in others])
    ledger.phase([(label, o, psi.INDEX_BYTES * (len(p) + len(train) + len(test))) for o, p in zip(others, positions)])
    duplicates = sum(calls([(n, "psi_duplicates", ()) for n in names]))
    return Alignment(len(train) + len(test), len(train), len(test), duplicates)


def batches(seed: int, rows: int, batch_size: int, epoch: int) -> list[np.ndarray]:
    """The shared batch order of one epoch (a common seed: no ids cross the network)."""
    order = rng(seed, Stream.VERTICAL_TRAIN, 1, epoch).permutation(rows)
    size = batch_size or rows
    return [order[i:i + size] for i in range(0, rows, size)]


@dataclass(frozen=True, kw_only=True)
class LrSettings:
    """Vertical logistic regression: SGD with L2 (not on the intercept), fixed-point reals with
    ``scale_bits`` fractional bits, Paillier keys of ``key_bits`` (1,024 by default for speed;
    2,048 is today's usual minimum for real use)."""

    learning_rate: float = 0.15
    l2: float = 0.01
    scale_bits: int = 20
    key_bits: int = 1024
    hide_gradients: bool = False  # weights only as [[w]]: no party sees a plaintext gradient (lr.py)


def train_lr(calls: Calls, names: list[str], ledger: VerticalLedger, *, settings: LrSettings, encrypted: bool,
             epochs: int, batch_size: int, seed: int, train_rows: int) -> Iterator[dict]:
    """Hardy et al.'s protocol per batch (lr.py); one row per epoch, scored on all rows.
    ``settings.hide_gradients`` (Paillier only): the variant in which weights stay encrypted."""
    label, others = names[0], names[1:]
    public_key, hidden = None, encrypted and settings.hide_gradients
    if encrypted:
        public_key = calls([(COORDINATOR, "public", ())])[0]
        ledger.phase([(COORDINATOR, n, settings.key_bits // 8) for n in names])
    setup = calls([(n, "lr_setup", (settings.scale_bits, public_key, settings.learning_rate, settings.l2, hidden))
                   for n in names])
    if hidden:  # each party encrypts its zero weights
        ledger.phase([], dict(zip(names, setup)))
    value_bytes = lr.ciphertext_bytes(settings.key_bits) if encrypted else lr.PLAIN_BYTES
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        if hidden:
            for batch in batches(seed, train_rows, batch_size, epoch):
                _hidden_batch(calls, names, ledger, batch, value_bytes, settings.scale_bits)
            result = {part: _hidden_scores(calls, names, ledger, part, value_bytes) for part in ("train", "test")}
            yield epoch_row(epoch, ledger, started, result)
            continue
        for batch in batches(seed, train_rows, batch_size, epoch):
            d = _residual(calls, names, ledger, batch, value_bytes)
            grads = calls([(n, "lr_gradient", (batch, d)) for n in names])
            if encrypted:
                ledger.phase([(n, COORDINATOR, value_bytes * len(g)) for n, (g, _) in zip(names, grads)],
                             {n: ops for n, (_, ops) in zip(names, grads)})
                plain = calls([(COORDINATOR, "decrypt", (g,)) for g, _ in grads])
                ledger.phase([(COORDINATOR, n, 2 * lr.PLAIN_BYTES * len(v)) for n, (v, _) in zip(names, plain)],
                             {COORDINATOR: sum((ops for _, ops in plain), Counter())})
                grads = [(v, None) for v, _ in plain]
            calls([(n, "lr_apply", (g,)) for n, (g, _) in zip(names, grads)])
        scores = {part: calls([(o, "lr_scores", (part,)) for o in others]) for part in ("train", "test")}
        ledger.phase([(o, label, lr.PLAIN_BYTES * sum(len(s[i]) for s in scores.values()))
                      for i, o in enumerate(others)])
        result = {part: calls([(label, "lr_evaluate", (part, scores[part]))])[0] for part in scores}
        yield epoch_row(epoch, ledger, started, result)


def _residual(calls: Calls, names: list[str], ledger: VerticalLedger, batch: np.ndarray, value_bytes: int) -> list:
    """The hosts' encrypted scores of ``batch`` up to the label party and its re-randomised [[d]]
    back (each party's own ``lr_quarter_scores`` and ``lr_residual`` say which scale)."""
    label, others = names[0], names[1:]
    sent = value_bytes * len(batch)
    scores = calls([(o, "lr_quarter_scores", (batch,)) for o in others])
    ledger.phase([(o, label, sent) for o in others], dict(zip(others, (ops for _, ops in scores))))
    d, ops = calls([(label, "lr_residual", (batch, [u for u, _ in scores]))])[0]
    ledger.phase([(label, o, sent) for o in others], {label: ops})
    return d


def _hidden_batch(calls: Calls, names: list[str], ledger: VerticalLedger, batch: np.ndarray, value_bytes: int,
                  scale_bits: int) -> None:
    """One batch with encrypted weights: [[u_k]] up, [[4d]] down, each party's masked update to the
    coordinator and a fresh rescaled ciphertext back, the mask removed (lr.py)."""
    d = _residual(calls, names, ledger, batch, value_bytes)
    updates = calls([(n, "lr_hidden_update", (batch, d)) for n in names])
    ledger.phase([(n, COORDINATOR, value_bytes * len(u)) for n, (u, _) in zip(names, updates)],
                 dict(zip(names, (ops for _, ops in updates))))
    bits = lr.rescale_bits(lr.Encoding(scale_bits))
    fresh = calls([(COORDINATOR, "rescale", (u, bits)) for u, _ in updates])
    ledger.phase([(COORDINATOR, n, value_bytes * len(f)) for n, (f, _) in zip(names, fresh)],
                 {COORDINATOR: sum((ops for _, ops in fresh), Counter())})
    applied = calls([(n, "lr_hidden_apply", (f,)) for n, (f, _) in zip(names, fresh)])
    ledger.phase([], dict(zip(names, applied)))


def _hidden_scores(calls: Calls, names: list[str], ledger: VerticalLedger, part: str, value_bytes: int) -> dict:
    """Scoring with encrypted weights: the others' [[u_k]] on every row of ``part`` to the label
    party, which sends [[z + mask]] to the coordinator and unmasks its decryption: only z is revealed."""
    label, others = names[0], names[1:]
    scores = calls([(o, "lr_encrypted_scores", (part,)) for o in others])
    ledger.phase([(o, label, value_bytes * len(u)) for o, (u, _) in zip(others, scores)],
                 dict(zip(others, (ops for _, ops in scores))))
    masked, ops = calls([(label, "lr_masked_total", (part, [u for u, _ in scores]))])[0]
    ledger.phase([(label, COORDINATOR, value_bytes * len(masked))], {label: ops})
    plain, ops = calls([(COORDINATOR, "decrypt", (masked,))])[0]
    ledger.phase([(COORDINATOR, label, 2 * lr.PLAIN_BYTES * len(plain))], {COORDINATOR: ops})
    return calls([(label, "lr_evaluate_masked", (part, plain))])[0]


def train_splitnn(calls: Calls, names: list[str], ledger: VerticalLedger, *, shape: netshape.NetShape, classes: int,
                  epochs: int, batch_size: int, seed: int, train_rows: int) -> Iterator[dict]:
    """Embeddings up, their gradients down, per batch (splitnn.py); one row per epoch."""
    label, others = names[0], names[1:]
    calls([(n, "nn_setup", (shape, len(names), classes)) for n in names])
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for batch in batches(seed, train_rows, batch_size, epoch):
            embeddings = calls([(n, "nn_forward", ("train", batch)) for n in names])
            ledger.phase([(o, label, netshape.FLOAT_BYTES * e.size) for o, e in zip(others, embeddings[1:])])
            _, grads = calls([(label, "nn_top", (batch, embeddings))])[0]
            calls([(n, "nn_backward", (g,)) for n, g in zip(names, grads)])
            ledger.phase([(label, o, netshape.FLOAT_BYTES * g.size) for o, g in zip(others, grads[1:])])
        result = {}
        for part in ("train", "test"):
            embeddings = calls([(n, "nn_forward", (part,)) for n in names])
            ledger.phase([(o, label, netshape.FLOAT_BYTES * e.size) for o, e in zip(others, embeddings[1:])])
            result[part] = calls([(label, "nn_evaluate", (part, embeddings))])[0]
        yield epoch_row(epoch, ledger, started, result)


def epoch_row(epoch: int, ledger: VerticalLedger, started: float, result: dict[str, dict[str, float]]) -> dict[str, Any]:
    """A row of ``rounds.parquet``: ``round`` is the epoch; ``bytes_up`` the bytes sent since the
    last row (PSI's in the first), as a horizontal run's rows count them; ``bytes_total`` all so far."""
    total = int(sum(ledger.sent.values()))
    previous, ledger.reported = ledger.reported, total
    return table_rows.round_row(
        round=epoch, sim_time=ledger.now, wall_time=time.perf_counter() - started,
        evaluation={f"{part}_{k}": v for part, values in result.items() for k, v in values.items()},
        bytes_up=total - previous,
        extra={"bytes_total": total, "he_seconds": ledger.he_seconds,
               **{f"he_{op}": int(n) for op, n in sorted(ledger.ops.items())}})


def party_rows(epoch: int, names: list[str], ledger: VerticalLedger) -> list[dict[str, Any]]:
    """Rows of ``clients.parquet``: bytes each party (and the coordinator) sent and received so far."""
    everyone = names + [COORDINATOR] * (COORDINATOR in ledger.sent)
    return [table_rows.client_row(round=epoch, client_id=i, status="trained", staleness=0,
                                  after={"client_id": {"party": n}},
                                  extra={"bytes_sent": int(ledger.sent[n]), "bytes_received": int(ledger.received[n])})
            for i, n in enumerate(everyone)]


class LocalParties:
    """Parties as objects in this process, one request after another (tests; the same
    requests as the Ray actors get)."""

    def __init__(self, parties: dict[str, Any]):
        self.parties = parties

    def __call__(self, requests: Sequence[tuple[str, str, tuple]]) -> list:
        return [getattr(self.parties[name], method)(*args) for name, method, args in requests]
