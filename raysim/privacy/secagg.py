"""Secure aggregation with dropouts (SecAgg) and its sparse-graph variant (SecAgg+).

Sources: K. Bonawitz, V. Ivanov, B. Kreuter, A. Marcedone, H. B. McMahan,
S. Patel, D. Ramage, A. Segal, K. Seth, "Practical Secure Aggregation for
Privacy-Preserving Machine Learning", CCS 2017 (IACR ePrint 2017/281);
J. Bell, K. Bonawitz, A. Gascon, T. Lepoint, M. Raykova, "Secure Single-Server
Aggregation with (Poly)Logarithmic Overhead", CCS 2020 (IACR ePrint 2020/704).

A single-process simulation of the honest-but-curious protocol's arithmetic,
with real cryptography. Each party is an object that holds only what that party
holds in a deployment: :class:`SecAggServer` sees public keys, share
ciphertexts it routes but cannot open, masked vectors, and the unmasking shares
the protocol hands it. The rounds are:

0. AdvertiseKeys: every client publishes two X25519 public keys, one for the
   channel to each peer (``c``) and one for pairwise masks (``s``). Two pairs,
   as in the paper, because the ``s`` secret key of a dropped client is
   revealed to the server; were it also the channel key, the server could read
   the shares that client received.
1. ShareKeys: each client Shamir-shares (t-of-its-neighbourhood, itself
   included) its self-mask seed ``b_u`` and its ``s`` secret key, and sends
   each neighbour its shares AES-GCM-encrypted under the HKDF-derived channel
   key, through the server.
2. MaskedInputCollection: client ``u`` sends
   ``y_u = x_u + PRG(b_u) + sum_{v in N(u), u < v} PRG(s_uv) - sum_{v in N(u), u > v} PRG(s_uv)  (mod R)``.
   Clients that received their shares but never send ``y_u`` are the dropped set.
3. Unmasking: every survivor reveals, for each neighbour, its share of ``b_v``
   if ``v`` survived or of ``v``'s ``s`` key if ``v`` dropped (never both for
   one client). The server rebuilds and subtracts the survivors' self masks and
   the dropped clients' pairwise masks with survivors; the survivors' pairwise
   masks cancel in the sum.

If a needed secret has fewer than ``threshold`` surviving holders the server
raises :class:`SecAggError`; it never returns a wrong sum.

SecAgg+ (``neighbours=k``): masks and shares only along a k-regular Harary
graph (ring offsets ``1..k/2``, plus "diameter" edges for odd ``k``; degree
``k + 1`` for one client when ``k`` and ``n`` are both odd) whose vertex
labels are a seeded random permutation of the clients, as in Bell et al. The
threshold then applies per neighbourhood: each client's secrets are shared
among its ``k`` neighbours and itself. The server learns the sum of each
connected component of the survivors' graph; a Harary graph is k-connected, so
with fewer than ``k`` dropouts that is only the total.

Choices:

* The ring ``Z_R`` (``R = 2**32`` by default), quantisation into it and the AES-CTR
  masks live in :mod:`raysim.privacy.ring`. A cryptographic PRG (rather than a
  numpy bit generator) keeps the masks computationally indistinguishable from
  uniform, which is the protocol's security argument.
* ``seed`` makes keys, seeds, nonces, Shamir coefficients and the graph
  reproducible for simulation; ``seed=None`` draws them from the OS CSPRNG. A
  seeded run is simulation-grade: anyone with the seed can unmask every input.
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from raysim.privacy import shamir
from raysim.privacy.ring import MODULUS_BITS, SEED_BYTES, check_bits, expand_mask, ring_mask

KEY_BYTES = SEED_BYTES
"""Size of an X25519 key, a self-mask seed and a derived pairwise seed (a mask seed, 32 bytes)."""

ID_BYTES = 4
"""Wire size of a client id (ids must be below ``2**32``)."""

NONCE_BYTES = 12
"""AES-GCM nonce, sent in front of each share ciphertext."""

_CHANNEL_INFO = b"raysim/secagg/channel-key"
_MASK_INFO = b"raysim/secagg/pairwise-mask"


class SecAggError(RuntimeError):
    """The protocol cannot finish correctly (too few surviving share holders)."""


# --------------------------------------------------------------------------- primitives


def _derive(private_key: X25519PrivateKey, peer_public: bytes, info: bytes) -> bytes:
    """X25519 agreement, then HKDF-SHA256 to a 32-byte key (both ends agree)."""
    shared = private_key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(shared)


def _public_bytes(private_key: X25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes_raw()


def neighbour_graph(
    clients: Sequence[int], neighbours: int | None, rng: np.random.Generator
) -> dict[int, frozenset[int]]:
    """Communication graph: complete (SecAgg) or k-regular Harary (SecAgg+).

    Args:
        clients: Distinct client ids.
        neighbours: ``None`` for the complete graph, else ``k >= 1``; ``k >=
            n - 1`` also gives the complete graph.
        rng: Draws the random relabelling of the Harary graph's vertices.

    Returns:
        Mapping from client to the set of its neighbours (excluding itself).
    """
    n = len(clients)
    if neighbours is not None and (isinstance(neighbours, bool) or not isinstance(neighbours, int) or neighbours < 1):
        raise ValueError(f"neighbours must be None (complete graph) or an int >= 1, got {neighbours!r}")
    if neighbours is None or neighbours >= n - 1:
        return {u: frozenset(clients) - {u} for u in clients}
    at = [clients[i] for i in rng.permutation(n)]  # at[position] = client
    edges = {frozenset((i, (i + d) % n)) for i in range(n) for d in range(1, neighbours // 2 + 1)}
    if neighbours % 2:
        if n % 2 == 0:
            edges |= {frozenset((i, i + n // 2)) for i in range(n // 2)}
        else:
            edges |= {frozenset((i, i + (n - 1) // 2)) for i in range((n + 1) // 2)}
    graph: dict[int, set[int]] = {u: set() for u in clients}
    for i, j in edges:
        graph[at[i]].add(at[j])
        graph[at[j]].add(at[i])
    return {u: frozenset(vs) for u, vs in graph.items()}


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class PublicKeys:
    """A client's advertised keys (raw 32-byte X25519 public keys)."""

    channel: bytes
    mask: bytes


@dataclass(frozen=True)
class UnmaskingShares:
    """One survivor's reply in the Unmasking round.

    Attributes:
        self_mask: Owner id -> this holder's share of the owner's seed ``b``
            (owners that survived).
        mask_key: Owner id -> this holder's share of the owner's ``s`` secret
            key (owners that dropped).
    """

    self_mask: Mapping[int, tuple[int, ...]]
    mask_key: Mapping[int, tuple[int, ...]]


def _encode_payload(sender: int, recipient: int, *shares: tuple[int, ...]) -> bytes:
    fields = [sender.to_bytes(ID_BYTES, "big"), recipient.to_bytes(ID_BYTES, "big")]
    fields += [element.to_bytes(shamir.SHARE_BYTES, "big") for share in shares for element in share]
    return b"".join(fields)


def _decode_payload(payload: bytes) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    sender = int.from_bytes(payload[:ID_BYTES], "big")
    recipient = int.from_bytes(payload[ID_BYTES : 2 * ID_BYTES], "big")
    body = payload[2 * ID_BYTES :]
    elements = [
        int.from_bytes(body[i : i + shamir.SHARE_BYTES], "big") for i in range(0, len(body), shamir.SHARE_BYTES)
    ]
    half = len(elements) // 2
    return sender, recipient, tuple(elements[:half]), tuple(elements[half:])


# --------------------------------------------------------------------------- parties


class SecAggClient:
    """One client's side of the protocol; holds its secrets across rounds.

    Args:
        client_id: Id in ``[0, 2**32)``.
        rng: Generator for keys, seeds, nonces and Shamir coefficients in a
            reproducible simulation; ``None`` uses the OS CSPRNG.
    """

    def __init__(self, client_id: int, *, rng: np.random.Generator | None = None) -> None:
        if isinstance(client_id, bool) or not isinstance(client_id, int) or not 0 <= client_id < 1 << 8 * ID_BYTES:
            raise ValueError(f"client_id must be an int in [0, 2**32), got {client_id!r}")
        self.id = client_id
        self._rng = rng
        self._channel_key = X25519PrivateKey.from_private_bytes(self._random_bytes(KEY_BYTES))
        self._mask_key = X25519PrivateKey.from_private_bytes(self._random_bytes(KEY_BYTES))
        self._self_mask_seed = self._random_bytes(KEY_BYTES)
        self._roster: Mapping[int, PublicKeys] = {}
        self._own_shares: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())
        self._inbox: Mapping[int, bytes] = {}
        self.prg_expansions = 0

    def _random_bytes(self, size: int) -> bytes:
        return secrets.token_bytes(size) if self._rng is None else self._rng.bytes(size)

    def advertise_keys(self) -> PublicKeys:
        """Round 0: publish the channel and mask public keys."""
        return PublicKeys(channel=_public_bytes(self._channel_key), mask=_public_bytes(self._mask_key))

    def share_keys(self, roster: Mapping[int, PublicKeys], *, threshold: int) -> dict[int, bytes]:
        """Round 1: share ``b_u`` and the mask secret key with the neighbours.

        Args:
            roster: Public keys of this client's neighbours (from the server).
            threshold: Shares needed to reconstruct; at most ``len(roster) + 1``.

        Returns:
            Recipient id -> ``nonce || AES-GCM(sender || recipient || shares)``.
        """
        self._roster = {v: keys for v, keys in roster.items() if v != self.id}
        holders = sorted([self.id, *self._roster])
        coefficients = None if self._rng is None else random.Random(self._random_bytes(KEY_BYTES))
        b_shares = shamir.split_bytes(self._self_mask_seed, threshold=threshold, holders=holders, rng=coefficients)
        key_shares = shamir.split_bytes(
            self._mask_key.private_bytes_raw(), threshold=threshold, holders=holders, rng=coefficients
        )
        self._own_shares = (b_shares[self.id], key_shares[self.id])
        outbox = {}
        for v, keys in self._roster.items():
            nonce = self._random_bytes(NONCE_BYTES)
            channel = AESGCM(_derive(self._channel_key, keys.channel, _CHANNEL_INFO))
            outbox[v] = nonce + channel.encrypt(nonce, _encode_payload(self.id, v, b_shares[v], key_shares[v]), None)
        return outbox

    def masked_input(self, x: np.ndarray, inbox: Mapping[int, bytes], *, modulus_bits: int) -> np.ndarray:
        """Round 2: mask the input with the self mask and the pairwise masks.

        Args:
            x: Ring vector (``uint64`` values below ``2**modulus_bits``).
            inbox: Share ciphertexts addressed to this client, kept for Unmasking.
            modulus_bits: Ring size exponent.

        Returns:
            ``y_u`` modulo ``2**modulus_bits``.
        """
        self._inbox = dict(inbox)
        y = np.array(x, dtype=np.uint64)
        y += expand_mask(self._self_mask_seed, y.size, modulus_bits)
        for v, keys in self._roster.items():
            pairwise = expand_mask(_derive(self._mask_key, keys.mask, _MASK_INFO), y.size, modulus_bits)
            if self.id < v:
                y += pairwise
            else:
                y -= pairwise
        self.prg_expansions += 1 + len(self._roster)
        return y & ring_mask(modulus_bits)

    def unmasking_shares(self, survivors: Iterable[int], dropped: Iterable[int]) -> UnmaskingShares:
        """Round 3: reveal ``b`` shares of surviving and key shares of dropped neighbours.

        Raises:
            SecAggError: If a client is listed both as survivor and as dropped:
                revealing both its shares would expose its input.
        """
        survivors, dropped = frozenset(survivors), frozenset(dropped)
        if survivors & dropped:
            raise SecAggError(f"clients {sorted(survivors & dropped)} listed as both survivor and dropped")
        received = {self.id: self._own_shares}
        for sender, message in self._inbox.items():
            channel = AESGCM(_derive(self._channel_key, self._roster[sender].channel, _CHANNEL_INFO))
            claimed, recipient, b_share, key_share = _decode_payload(
                channel.decrypt(message[:NONCE_BYTES], message[NONCE_BYTES:], None)
            )
            if (claimed, recipient) != (sender, self.id):
                raise SecAggError(f"share ciphertext from {sender} is addressed {claimed}->{recipient}")
            received[sender] = (b_share, key_share)
        return UnmaskingShares(
            self_mask={v: shares[0] for v, shares in received.items() if v in survivors},
            mask_key={v: shares[1] for v, shares in received.items() if v in dropped},
        )


@dataclass(frozen=True)
class SecAggView:
    """Everything the server saw: what a curious server could analyse.

    Attributes:
        graph: Client -> neighbours (public).
        public_keys: Advertised public keys.
        share_ciphertexts: ``(sender, recipient)`` -> routed ciphertext (opaque
            to the server: it has no channel secret key).
        masked_inputs: Survivor -> ``y_u``.
        self_mask_shares: Surviving owner -> holder -> share of ``b_owner``.
        mask_key_shares: Dropped owner -> holder -> share of its mask secret key.
    """

    graph: Mapping[int, frozenset[int]]
    public_keys: Mapping[int, PublicKeys]
    share_ciphertexts: Mapping[tuple[int, int], bytes]
    masked_inputs: Mapping[int, np.ndarray]
    self_mask_shares: Mapping[int, Mapping[int, tuple[int, ...]]]
    mask_key_shares: Mapping[int, Mapping[int, tuple[int, ...]]]


class SecAggServer:
    """The aggregator: routes messages, checks thresholds and unmasks the sum.

    It also meters the bytes each client uploads and downloads.

    Args:
        graph: Client -> neighbours, from :func:`neighbour_graph`.
        threshold: Shares needed per secret, in ``[1, smallest neighbourhood + 1]``.
        vector_size: Length ``P`` of the input vectors.
        modulus_bits: Ring size exponent in ``[1, 64]``.
    """

    def __init__(
        self,
        *,
        graph: Mapping[int, frozenset[int]],
        threshold: int,
        vector_size: int,
        modulus_bits: int = MODULUS_BITS,
    ) -> None:
        check_bits("modulus_bits", modulus_bits, 64)
        smallest = min(len(vs) for vs in graph.values()) + 1
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= smallest:
            raise ValueError(
                f"threshold must be an int in [1, {smallest}] (smallest neighbourhood incl. itself), got {threshold!r}"
            )
        self.graph = graph
        self.threshold = threshold
        self.vector_size = vector_size
        self.modulus_bits = modulus_bits
        self.bytes_up = {u: 0 for u in graph}
        self.bytes_down = {u: 0 for u in graph}
        self.prg_expansions = 0
        self._public_keys: dict[int, PublicKeys] = {}
        self._ciphertexts: dict[tuple[int, int], bytes] = {}
        self._masked: dict[int, np.ndarray] = {}
        self._self_mask_shares: dict[int, dict[int, tuple[int, ...]]] = {}
        self._mask_key_shares: dict[int, dict[int, tuple[int, ...]]] = {}
        self.survivors: frozenset[int] = frozenset()
        self.dropped: frozenset[int] = frozenset()

    def advertise_keys(self, keys: Mapping[int, PublicKeys]) -> dict[int, dict[int, PublicKeys]]:
        """Round 0: collect public keys; return each client its neighbours' keys."""
        if set(keys) != set(self.graph):
            raise SecAggError("this simulation expects every client in the graph to advertise keys")
        self._public_keys = dict(keys)
        for u in keys:
            self.bytes_up[u] += 2 * KEY_BYTES
        rosters = {u: {v: keys[v] for v in self.graph[u]} for u in keys}
        for u, roster in rosters.items():
            self.bytes_down[u] += len(roster) * (ID_BYTES + 2 * KEY_BYTES)
        return rosters

    def share_keys(self, outboxes: Mapping[int, Mapping[int, bytes]]) -> dict[int, dict[int, bytes]]:
        """Round 1: route share ciphertexts; return each client its inbox."""
        inboxes: dict[int, dict[int, bytes]] = {u: {} for u in self.graph}
        for sender, outbox in outboxes.items():
            for recipient, message in outbox.items():
                if recipient not in self.graph[sender]:
                    raise SecAggError(f"client {sender} sent shares to non-neighbour {recipient}")
                self._ciphertexts[(sender, recipient)] = message
                inboxes[recipient][sender] = message
                self.bytes_up[sender] += ID_BYTES + len(message)
                self.bytes_down[recipient] += ID_BYTES + len(message)
        return inboxes

    def masked_input_collection(self, masked: Mapping[int, np.ndarray]) -> tuple[frozenset[int], frozenset[int]]:
        """Round 2: collect ``y_u``; fix survivors and dropped; check recoverability.

        Returns:
            ``(survivors, dropped)``, sent to every survivor for Unmasking.

        Raises:
            SecAggError: If fewer than ``threshold`` clients survived overall, or a
                survivor's self mask or a dropped client's mask key (when it
                has surviving neighbours) has fewer than ``threshold`` holders left.
        """
        ring = 1 << self.modulus_bits
        for u, y in masked.items():
            y = np.asarray(y)
            if u not in self.graph or y.shape != (self.vector_size,) or y.dtype != np.uint64 or (y >= ring).any():
                raise SecAggError(f"malformed masked input from client {u}")
            self._masked[u] = y
            self.bytes_up[u] += math.ceil(self.vector_size * self.modulus_bits / 8)
        self.survivors = frozenset(self._masked)
        self.dropped = frozenset(self.graph) - self.survivors
        if len(self.survivors) < self.threshold:
            raise SecAggError(
                f"only {len(self.survivors)} clients sent masked inputs, fewer than threshold={self.threshold}; "
                "the sum cannot be unmasked"
            )
        for owner in sorted(self.graph):
            holders = self.graph[owner] & self.survivors
            if owner in self.survivors:
                holders |= {owner}
            elif not holders:
                continue  # no surviving neighbour carries a mask with this client
            if len(holders) < self.threshold:
                secret = "self-mask seed" if owner in self.survivors else "mask key"
                raise SecAggError(
                    f"client {owner}'s {secret} has {len(holders)} surviving holders, fewer than "
                    f"threshold={self.threshold}; the sum cannot be unmasked"
                )
        for u in self.survivors:
            self.bytes_down[u] += ID_BYTES * len(self.graph[u])  # survivor/dropped status of each neighbour
        return self.survivors, self.dropped

    def unmask(self, responses: Mapping[int, UnmaskingShares]) -> np.ndarray:
        """Round 3: reconstruct the needed secrets and return the survivors' sum mod R.

        Raises:
            SecAggError: If the responses hold fewer than ``threshold`` shares of a
                needed secret.
        """
        for holder, response in responses.items():
            if holder not in self.survivors:
                raise SecAggError(f"unmasking response from non-survivor {holder}")
            if set(response.self_mask) - self.survivors or set(response.mask_key) - self.dropped:
                raise SecAggError(f"client {holder} revealed shares the server did not ask for")
            for owner, share in response.self_mask.items():
                self._self_mask_shares.setdefault(owner, {})[holder] = share
            for owner, share in response.mask_key.items():
                self._mask_key_shares.setdefault(owner, {})[holder] = share
            self.bytes_up[holder] += sum(
                ID_BYTES + shamir.SHARE_BYTES * len(share)
                for share in (*response.self_mask.values(), *response.mask_key.values())
            )
        total = np.zeros(self.vector_size, dtype=np.uint64)
        for y in self._masked.values():
            total += y
        for owner in sorted(self.survivors):
            seed = self._reconstruct(self._self_mask_shares.get(owner, {}), owner, "self-mask seed")
            total -= expand_mask(seed, self.vector_size, self.modulus_bits)
            self.prg_expansions += 1
        for owner in sorted(self.dropped):
            partners = sorted(self.graph[owner] & self.survivors)
            if not partners:
                continue
            key = X25519PrivateKey.from_private_bytes(
                self._reconstruct(self._mask_key_shares.get(owner, {}), owner, "mask key")
            )
            for u in partners:  # u added +PRG(s_uv) if u < owner, else -PRG(s_uv)
                seed = _derive(key, self._public_keys[u].mask, _MASK_INFO)
                pairwise = expand_mask(seed, self.vector_size, self.modulus_bits)
                if u < owner:
                    total -= pairwise
                else:
                    total += pairwise
                self.prg_expansions += 1
        return total & ring_mask(self.modulus_bits)

    def _reconstruct(self, shares: Mapping[int, tuple[int, ...]], owner: int, what: str) -> bytes:
        try:
            return shamir.reconstruct_bytes(shares, self.threshold, KEY_BYTES)
        except ValueError as error:
            raise SecAggError(f"cannot reconstruct client {owner}'s {what}: {error}") from error

    def view(self) -> SecAggView:
        """Snapshot of everything the server has seen."""
        return SecAggView(
            graph=dict(self.graph),
            public_keys=dict(self._public_keys),
            share_ciphertexts=dict(self._ciphertexts),
            masked_inputs={u: y.copy() for u, y in self._masked.items()},
            self_mask_shares={u: dict(s) for u, s in self._self_mask_shares.items()},
            mask_key_shares={u: dict(s) for u, s in self._mask_key_shares.items()},
        )


# --------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class SecAggCost:
    """Communication and computation of one run.

    Attributes:
        bytes_up: Client -> bytes sent (keys 2 x 32 B, share ciphertexts, the
            masked vector ``ceil(P * modulus_bits / 8)`` B, unmasking shares
            16 B per field element; 4 B per client id).
        bytes_down: Client -> bytes received (neighbours' ids and keys, share
            ciphertexts, neighbour survival status).
        client_prg_expansions: Client -> mask vectors it expanded (``1 + degree``
            for survivors, 0 for dropped clients).
        server_prg_expansions: Mask vectors the server expanded (one per
            survivor, one per dropped-survivor edge).
    """

    bytes_up: Mapping[int, int]
    bytes_down: Mapping[int, int]
    client_prg_expansions: Mapping[int, int]
    server_prg_expansions: int


@dataclass(frozen=True)
class SecAggResult:
    """Outcome of :func:`run_secagg`.

    Attributes:
        sum: Sum of the survivors' inputs modulo ``2**modulus_bits`` (``uint64``).
        survivors: Clients whose inputs are in the sum.
        server_view: What the server saw.
        cost: Bytes and PRG expansions.
    """

    sum: np.ndarray
    survivors: frozenset[int]
    server_view: SecAggView
    cost: SecAggCost


def run_secagg(
    inputs: Mapping[int, np.ndarray],
    *,
    threshold: int,
    dropped: Iterable[int] = frozenset(),
    neighbours: int | None = None,
    seed: int | None = None,
    modulus_bits: int = MODULUS_BITS,
) -> SecAggResult:
    """Run one aggregation round end to end.

    Args:
        inputs: Client id -> ring vector (integers in ``[0, 2**modulus_bits)``,
            e.g. from :func:`quantize`); all of the same length.
        threshold: Shamir threshold ``t`` (per neighbourhood for SecAgg+).
        dropped: Clients that complete ShareKeys but never send their masked input.
        neighbours: ``None`` for SecAgg (complete graph) or ``k`` for SecAgg+.
        seed: Makes the run reproducible; ``None`` uses the OS CSPRNG.
        modulus_bits: Ring size exponent in ``[1, 64]``.

    Returns:
        The unmasked sum, the server's view and the cost.

    Raises:
        SecAggError: If too few clients survive to unmask the sum.
        ValueError: On malformed inputs or parameters.
    """
    check_bits("modulus_bits", modulus_bits, 64)
    clients = sorted(inputs)
    dropped = frozenset(dropped)
    if not clients:
        raise ValueError("inputs must hold at least one client")
    if not dropped <= set(clients):
        raise ValueError(f"dropped must be a subset of the input clients, extra: {sorted(dropped - set(clients))}")
    size = np.asarray(inputs[clients[0]]).size
    vectors = {}
    for u in clients:
        x = np.asarray(inputs[u])
        in_ring = np.issubdtype(x.dtype, np.integer) and not ((x < 0).any() or (x >= 1 << modulus_bits).any())
        if x.shape != (size,) or not in_ring:
            raise ValueError(
                f"inputs must be 1-D integer vectors of one length with values in [0, 2**{modulus_bits}); "
                f"client {u} has shape {x.shape}, dtype {x.dtype}"
            )
        vectors[u] = x.astype(np.uint64)
    streams = np.random.SeedSequence(seed).spawn(len(clients) + 1)
    graph = neighbour_graph(clients, neighbours, np.random.default_rng(streams[0]))
    server = SecAggServer(graph=graph, threshold=threshold, vector_size=size, modulus_bits=modulus_bits)
    parties = {
        u: SecAggClient(u, rng=None if seed is None else np.random.default_rng(stream))
        for u, stream in zip(clients, streams[1:])
    }

    rosters = server.advertise_keys({u: party.advertise_keys() for u, party in parties.items()})
    inboxes = server.share_keys({u: party.share_keys(rosters[u], threshold=threshold) for u, party in parties.items()})
    survivors, gone = server.masked_input_collection(
        {
            u: parties[u].masked_input(vectors[u], inboxes[u], modulus_bits=modulus_bits)
            for u in clients
            if u not in dropped
        }
    )
    total = server.unmask({u: parties[u].unmasking_shares(survivors, gone) for u in sorted(survivors)})
    return SecAggResult(
        sum=total,
        survivors=survivors,
        server_view=server.view(),
        cost=SecAggCost(
            bytes_up=dict(server.bytes_up),
            bytes_down=dict(server.bytes_down),
            client_prg_expansions={u: party.prg_expansions for u, party in parties.items()},
            server_prg_expansions=server.prg_expansions,
        ),
    )
