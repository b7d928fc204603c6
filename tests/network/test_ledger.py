"""The ledger: RFC 6962 Merkle roots (test vector), the hash chain and its verification, JSON round
trip, the PoW race against its closed form, committee validation."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysim.network.ledger import (append_block, chain_from_json, chain_to_json, committee, committee_accept,
                                   fork_probability, merkle_root, pow_race, score_updates, update_digest,
                                   verify_chain)

# RFC 6962 test vector (certificate-transparency's merkle_tree_test): the roots of the first
# 1..8 of these leaves.
LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43", bytes(range(0x50, 0x58)),
          bytes(range(0x60, 0x70))]
ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]


@pytest.mark.parametrize("count", range(1, 9))
def test_merkle_root_matches_the_rfc6962_test_vector(count: int) -> None:
    assert merkle_root(LEAVES[:count]).hex() == ROOTS[count - 1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=2, max_size=12), st.data())
def test_the_root_commits_to_every_leaf_and_their_order(leaves: list[bytes], data) -> None:
    i = data.draw(st.integers(0, len(leaves) - 1))
    edited = [*leaves[:i], leaves[i] + b"!", *leaves[i + 1:]]
    assert merkle_root(edited) != merkle_root(leaves)
    if leaves[0] != leaves[-1]:
        assert merkle_root([leaves[-1], *leaves[1:-1], leaves[0]]) != merkle_root(leaves)


def test_empty_tree_and_the_bitcoin_convention_differ() -> None:
    assert merkle_root([]) == hashlib.sha256(b"").digest()
    leaves = [b"a", b"b", b"c"]
    sha = lambda data: hashlib.sha256(data).digest()  # noqa: E731
    bitcoin_style = sha(sha(sha(b"a") + sha(b"b")) + sha(sha(b"c") + sha(b"c")))  # duplicate the odd node, no prefixes
    assert merkle_root(leaves) != bitcoin_style


def test_update_digests_see_dtype_shape_and_values() -> None:
    update = np.arange(6, dtype=np.float32)
    assert update_digest(update) == update_digest(update.copy())
    assert len({update_digest(update), update_digest(update.reshape(2, 3)), update_digest(update.astype(np.float64)),
                update_digest(update + 1e-6)}) == 4


def make_chain(blocks: int = 5) -> list:
    chain = []
    for height in range(blocks):
        updates = np.random.default_rng(height).normal(size=(3 + height, 4))
        chain = append_block(chain, [update_digest(u) for u in updates], timestamp=10.0 * height + 0.1, producer=height % 3)
    return chain


def test_a_chain_verifies_and_survives_json() -> None:
    chain = make_chain()
    assert verify_chain(chain).valid
    assert [b.prev_hash for b in chain[1:]] == [b.hash for b in chain[:-1]]
    again = chain_from_json(chain_to_json(chain))
    assert again == chain and verify_chain(again, head_hash=chain[-1].hash).valid


def test_a_first_block_not_on_genesis_is_named() -> None:
    chain = make_chain(2)
    result = verify_chain([replace(chain[0], prev_hash="11" * 32), chain[1]])
    assert (result.valid, result.first_bad) == (False, 0)


@pytest.mark.parametrize("edit", ["digest", "timestamp", "rehashed", "index"])
def test_an_edited_block_is_detected_and_named(edit: str) -> None:
    chain = make_chain()
    block = chain[2]
    if edit == "digest":  # one update swapped, the block's hashes left alone
        edited = replace(block, digests=(update_digest(np.zeros(4)).hex(), *block.digests[1:]))
    elif edit == "timestamp":
        edited = replace(block, timestamp=block.timestamp + 1)
    elif edit == "index":
        edited = replace(block, index=7)
    else:  # the editor recomputed the block's own Merkle root and hash: the next block's pointer breaks
        rebuilt = append_block(chain[:2], [update_digest(np.zeros(4))], block.timestamp, block.producer)
        edited = rebuilt[2]
    result = verify_chain([*chain[:2], edited, *chain[3:]])
    assert not result.valid and result.first_bad == 2, result


def test_a_chain_rewritten_from_the_edit_on_is_caught_by_the_trusted_head() -> None:
    chain = make_chain()
    forged = append_block(chain[:2], [update_digest(np.zeros(4))], chain[2].timestamp, chain[2].producer)
    for block in chain[3:]:
        forged = append_block(forged, [bytes.fromhex(d) for d in block.digests], block.timestamp, block.producer)
    assert verify_chain(forged).valid  # self-consistent: only a pinned head tells
    assert not verify_chain(forged, head_hash=chain[-1].hash).valid


def test_a_lone_winner_wins_with_probability_proportional_to_its_rate() -> None:
    rates = np.array([1.0, 2.0, 5.0])
    race = pow_race(rates, delay=0.0, blocks=40_000, seed=1)
    shares = np.bincount(race.winner, minlength=3) / 40_000
    np.testing.assert_allclose(shares, rates / rates.sum(), atol=0.01)
    intervals = np.diff(np.concatenate([[0.0], race.found]))
    assert intervals.mean() == pytest.approx(1 / rates.sum(), rel=0.02)  # Exp(Lambda)
    assert not race.forked.any()


def test_fork_rate_grows_as_block_time_approaches_the_propagation_delay() -> None:
    """Many simulated blocks per setting; the fork rate follows 1 - exp(-(Lambda - lambda_m) delta)."""
    delay, rates_shape, measured = 1.0, np.array([1.0, 1.0, 2.0, 4.0]), []
    for block_time in (100.0, 20.0, 5.0, 2.0, 1.0):
        rates = rates_shape / rates_shape.sum() / block_time  # Lambda = 1 / block_time
        race = pow_race(rates, delay, blocks=20_000, seed=7)
        expected = fork_probability(rates, delay)
        assert race.fork_rate == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / 20_000) + 1e-4)
        assert (race.rival[race.forked] != race.winner[race.forked]).all() and (race.rival[~race.forked] == -1).all()
        measured.append(race.fork_rate)
    assert measured == sorted(measured) and measured[0] < 0.01 < 0.4 < measured[-1]
    # Small Lambda delta: about Lambda delta weighted by the losers' share.
    assert fork_probability([0.001] * 4, 1.0) == pytest.approx(0.003, rel=0.01)


def test_the_race_is_seeded_and_sits_on_the_simulated_clock() -> None:
    first = pow_race([0.1, 0.2], 0.5, 50, seed=3, start=100.0)
    again = pow_race([0.1, 0.2], 0.5, 50, seed=3, start=100.0)
    np.testing.assert_array_equal(first.found, again.found)
    assert first.found[0] > 100.0 and (np.diff(first.found) > 0.5).all()  # each race starts after propagation
    assert not np.array_equal(first.winner, pow_race([0.1, 0.2], 0.5, 50, seed=4).winner)
    finality = first.time_to_finality(6)
    assert len(finality) == 44 and finality[0] == pytest.approx(first.found[6] - first.found[0])
    assert finality.min() > 6 * 0.5  # six more races, each after a propagation delay
    with pytest.raises(ValueError, match="positive miner rates"):
        pow_race([0.0, 1.0], 0.5, 10, seed=0)


def test_committee_rotates_from_the_seed_and_rejects_the_worst() -> None:
    members = committee(20, 5, round_number=3, seed=9)
    assert len(set(members.tolist())) == 5 and members.tolist() == committee(20, 5, 3, seed=9).tolist()
    assert members.tolist() != committee(20, 5, 4, seed=9).tolist()
    updates = [np.full(3, v) for v in (0.9, -5.0, 1.0, 1.1, 40.0)]  # two poisoned updates

    def evaluate(member: int, update: np.ndarray) -> float:
        return -abs(float(update.mean()) - 1.0) + 0.001 * member  # accuracy-like: near 1 is good

    scores = score_updates(members, updates, evaluate)
    assert scores.shape == (5, 5)
    np.testing.assert_array_equal(committee_accept(scores, reject=2), [0, 2, 3])
    np.testing.assert_array_equal(committee_accept(np.array([[1.0, 1.0, 0.0]]), reject=1), [0, 1])  # ties keep the lower index
    with pytest.raises(ValueError, match="one update must remain"):
        committee_accept(scores, reject=5)
    with pytest.raises(ValueError, match="committee_size"):
        committee(4, 5, 0, seed=0)


def test_an_orphaned_block_delays_the_round() -> None:
    """Issue 24 (9): a race that forks orphans its block, and the height is raced again until a
    race ends without a rival, so a forked round takes the orphaned races' time too (it used to
    take only its own race's time, as if the fork were free). Blocks 1 s apart on average with
    1 s of propagation fork about half the races; every race is paid for once, in order."""
    from raysim.network.config import NetworkConfig
    from raysim.sim.stages.chain import Chain

    config = NetworkConfig(topology="ledger", miners=4, block_interval_s=1.0, propagation_s=1.0)
    chain = Chain(config, seed=5, num_clients=4)
    columns = [chain.append([np.zeros(2)], now=0.0)[1] for _ in range(6)]
    orphaned = [c["orphaned"] for c in columns]
    races = pow_race(config.miner_rates(), 1.0, chain.raced, seed=5)  # the same races, drawn at once
    assert chain.raced == 6 + sum(orphaned) and races.forked.sum() == sum(orphaned) > 0
    settled = np.cumsum([o + 1 for o in orphaned]) - 1  # the race that settled each round's height
    assert not races.forked[settled].any()
    for k, c in enumerate(columns):  # each round waits from the last settling race to its own, forks included
        began = races.found[settled[k - 1]] if k else -1.0
        assert c["block_s"] == pytest.approx(races.found[settled[k]] - began)
        assert c["forked"] == (c["orphaned"] > 0) and (c["fork_s"] > 0) == c["forked"]
        assert c["fork_s"] == pytest.approx(races.found[settled[k] - 1] - began if c["forked"] else 0.0)
        assert c["block_s"] > c["fork_s"] + 1.0  # the settling race and its propagation come on top
    assert sum(c["block_s"] for c in columns) == pytest.approx(races.found[-1] + 1.0)
    again = Chain(config, seed=5, num_clients=4)
    assert [again.append([np.zeros(2)], now=0.0)[1] for _ in range(6)] == columns  # seeded


def test_races_drawn_in_parts_are_the_races_drawn_at_once() -> None:
    """A chain draws its races as forks call for them; across the keyed chunks they are the same."""
    rates = [0.3, 0.2, 0.5]
    whole = pow_race(rates, 0.4, 700, seed=3)
    part = pow_race(rates, 0.4, 300, seed=3, first=250, start=float(whole.found[249]) + 0.4)
    np.testing.assert_array_equal(part.winner, whole.winner[250:550])
    np.testing.assert_array_equal(part.forked, whole.forked[250:550])
    np.testing.assert_allclose(part.found, whole.found[250:550], rtol=1e-12)
