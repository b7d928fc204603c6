"""ECDH-PSI: the parties learn exactly the plain set intersection, whatever the overlap."""

from __future__ import annotations

import numpy as np
import pytest

from raysim.sim.bridges.vertical import HeCost, LocalParties, Network, VerticalLedger, align
from raysim.vertical import data, psi
from raysim.vertical.party import Party

A, B = b"\x01" * 32, b"\x02" * 32


@pytest.mark.parametrize("ids_a, ids_b", [
    (list(range(0, 100)), list(range(50, 180))),  # partial overlap
    (list(range(20)), list(range(20, 40))),  # empty
    (list(range(30)), list(reversed(range(30)))),  # full, another order
    ([], list(range(5))),  # one side empty
])
def test_intersection_is_the_set_intersection(ids_a, ids_b) -> None:
    found = psi.intersect(ids_a, ids_b, secret_a=A, secret_b=B)
    assert found == [i for i in ids_a if i in set(ids_b)]


def test_duplicates_count_once_and_strings_work() -> None:
    found = psi.intersect(["x", "y", "x", "z", "y"], ["y", "y", "x", "w"], secret_a=A, secret_b=B)
    assert found == ["x", "y"]


def test_masked_values_hide_the_ids() -> None:
    """Single masks differ between keys, and nothing in them is the plain hash."""
    key_a, key_b = psi.new_key(A), psi.new_key(B)
    once_a, once_b = psi.mask_ids(key_a, [7]), psi.mask_ids(key_b, [7])
    assert once_a != once_b and once_a[0] != psi.hash_to_point(7)
    assert psi.blind(key_b, once_a) == psi.blind(key_a, once_b)


def _parties(num_parties: int, overlap: float, duplicate: bool = False):
    table = data.load_table("synthetic", seed=1, rows=200, columns=6)
    columns = [list(range(k, 6, num_parties)) for k in range(num_parties)]
    shares, ids = data.split(table, columns, label_party=0, overlap=overlap, seed=1)
    if duplicate:  # the last party lists one of its ids twice
        s = shares[-1]
        shares[-1] = data.Share(np.r_[s.ids, s.ids[:1]], np.r_[s.features, s.features[:1]])
    parties = {f"p{k}": Party(k, share, seed=1) for k, share in enumerate(shares)}
    return parties, shares


@pytest.mark.parametrize("num_parties, overlap", [(2, 0.8), (3, 0.8), (4, 1.0)])
def test_parties_align_on_the_common_ids_in_one_order(num_parties, overlap) -> None:
    parties, shares = _parties(num_parties, overlap)
    ledger = VerticalLedger(Network(), HeCost())
    result = align(LocalParties(parties), list(parties), ledger)
    common = set.intersection(*(set(s.ids.tolist()) for s in shares))
    assert result.intersection == len(common) == round(overlap * 200)
    orders = [p.aligned_ids() for p in parties.values()]
    assert set(orders[0].tolist()) == common
    assert all(np.array_equal(orders[0], o) for o in orders[1:])
    assert not np.array_equal(shares[0].ids[: len(common)], shares[1].ids[: len(common)])  # different orders
    # |X| + |Y| + |X| points per pair, plus the positions the label party sends back
    points = sum(2 * len(shares[0].ids) + len(s.ids) for s in shares[1:]) * psi.POINT_BYTES
    assert sum(ledger.sent.values()) == points + psi.INDEX_BYTES * 2 * len(common) * (num_parties - 1)
    assert ledger.now > 0


def test_a_duplicated_id_is_aligned_once() -> None:
    parties, shares = _parties(2, 1.0, duplicate=True)
    result = align(LocalParties(parties), list(parties), VerticalLedger(Network(), HeCost()))
    assert result.intersection == 200 and result.duplicates == 1
