"""Gossip: seeded graphs, MH mixing, the oracle spectral gaps, averaging at the rate the gap sets,
the row-normalised pitfall, one-peer exponential, D-PSGD vs FedAvg, pairwise gossip."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysim.network import graphs
from raysim.network.mixing import (bytes_sent, consensus_distance, contraction_rate, dpsgd_step, gossip_step,
                                   metropolis_hastings, one_peer_contraction, one_peer_matrix, pairwise_contraction,
                                   pairwise_expected, pairwise_schedule, pairwise_step, round_record, row_normalised,
                                   spectral_gap)

# shared/reference/network.md, MH weights, exact eigendecomposition.
ORACLE = {(16, "ring"): 0.05075, (16, "torus"): 0.4, (16, "exponential"): 0.5, (16, "complete"): 1.0,
          (64, "ring"): 0.00321, (64, "torus"): 0.11716, (64, "exponential"): 0.33333, (64, "complete"): 1.0}


@pytest.mark.parametrize("n, kind", ORACLE)
def test_spectral_gaps_match_the_reference_table(n: int, kind: str) -> None:
    weights = metropolis_hastings(graphs.build(kind, n))
    assert spectral_gap(weights) == pytest.approx(ORACLE[n, kind], abs=5e-6)
    eigenvalues = np.linalg.eigvalsh(weights)  # the symmetric definition agrees with the norm form
    assert spectral_gap(weights) == pytest.approx(1 - max(abs(eigenvalues[-2]), abs(eigenvalues[0])), abs=1e-12)


def test_ring_gap_has_its_closed_form() -> None:
    assert spectral_gap(metropolis_hastings(graphs.ring(16))) == pytest.approx(1 - (1 + 2 * math.cos(math.pi / 8)) / 3,
                                                                              abs=1e-12)


@pytest.mark.parametrize("n", [16, 64])
def test_averaging_converges_to_the_exact_mean_at_the_rate_of_the_gap(n: int) -> None:
    """Pure gossip (no training): the mean is kept, every step contracts the consensus distance by
    at most 1 - rho, and over many steps the rate approaches 1 - rho; better-connected graphs reach
    eps-consensus in fewer steps, in the order of their gaps."""
    start = np.random.default_rng(0).normal(size=(n, 5))
    steps_needed = {}
    for kind in ("ring", "torus", "exponential"):
        weights = metropolis_hastings(graphs.build(kind, n))
        rho = spectral_gap(weights)
        models, distances = start, [consensus_distance(start)]
        while distances[-1] > 1e-6 * distances[0]:
            models = gossip_step(weights, models)
            distances.append(consensus_distance(models))
            assert distances[-1] <= (1 - rho) * distances[-2] * (1 + 1e-9)
        np.testing.assert_allclose(models, np.tile(start.mean(axis=0), (n, 1)), atol=1e-5)
        steps_needed[kind] = len(distances) - 1
        tail = (distances[-1] / distances[-11]) ** 0.1  # the asymptotic rate per step
        assert tail == pytest.approx(1 - rho, rel=0.03)
        assert 0.5 <= steps_needed[kind] / (math.log(1e6) / rho) <= 1.0  # rounds to eps-consensus ~ ln(1/eps)/rho
    assert steps_needed["exponential"] < steps_needed["torus"] < steps_needed["ring"]


def test_one_step_on_ring_16_contracts_as_the_reference_says() -> None:
    weights = metropolis_hastings(graphs.ring(16))
    models = np.random.default_rng(1).normal(size=(16, 5))
    mixed = gossip_step(weights, models)
    assert consensus_distance(mixed) <= (1 - spectral_gap(weights)) * consensus_distance(models)
    np.testing.assert_allclose(mixed.mean(axis=0), models.mean(axis=0), atol=1e-12)


def ring_of_8_with_chords() -> nx.Graph:
    graph = graphs.ring(8)
    graph.add_edges_from([(0, 4), (0, 2)])
    return graph


def test_row_normalised_weights_converge_to_the_wrong_value_mh_does_not() -> None:
    graph, start = ring_of_8_with_chords(), np.arange(8.0)[:, None]
    mh, row = start, start
    for _ in range(500):
        mh = gossip_step(metropolis_hastings(graph), mh)
        row = gossip_step(row_normalised(graph), row)
    np.testing.assert_allclose(mh, 3.5, atol=1e-9)
    np.testing.assert_allclose(row, 90 / 28, atol=1e-9)  # pi_i proportional to d_i + 1


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 25), p=st.floats(0.2, 1.0), seed=st.integers(0, 2 ** 16))
def test_mh_weights_are_symmetric_doubly_stochastic_on_random_connected_graphs(n: int, p: float, seed: int) -> None:
    graph = graphs.erdos_renyi(n, p, seed)
    weights = metropolis_hastings(graph)
    assert nx.is_connected(graph)
    np.testing.assert_allclose(weights, weights.T)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert (weights >= 0).all()
    off_graph = nx.to_numpy_array(nx.complement(graph), nodelist=range(n)) > 0
    assert (weights[off_graph] == 0).all()  # weight only on edges and the diagonal
    assert 0 < spectral_gap(weights) <= 1 + 1e-12


def test_erdos_renyi_is_seeded_and_redrawn_until_connected() -> None:
    first = graphs.erdos_renyi(30, 0.08, seed=3)
    assert nx.is_connected(first)
    assert sorted(first.edges) == sorted(graphs.erdos_renyi(30, 0.08, seed=3).edges)
    assert sorted(first.edges) != sorted(graphs.erdos_renyi(30, 0.08, seed=4).edges)
    with pytest.raises(ValueError, match="raise edge_probability"):
        graphs.erdos_renyi(40, 0.001, seed=0)


@pytest.mark.parametrize("kind, n, degree", [("ring", 10, 2), ("torus", 25, 4), ("exponential", 16, 7),
                                             ("exponential", 64, 11), ("complete", 6, 5)])
def test_generators_give_the_degrees_they_promise(kind: str, n: int, degree: int) -> None:
    graph = graphs.build(kind, n)
    assert sorted(graph.nodes) == list(range(n))
    assert {d for _, d in graph.degree()} == {degree}


@pytest.mark.parametrize("call, message", [(lambda: graphs.torus(12), "s >= 3"), (lambda: graphs.ring(2), "at least 3"),
                                           (lambda: graphs.build("erdos_renyi", 5), "edge_probability"),
                                           (lambda: graphs.build("one_peer_exponential", 8), "no static graph")])
def test_generators_refuse_what_they_cannot_build(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_one_peer_exponential_product_over_tau_steps_is_the_exact_average() -> None:
    n, tau = 16, 4
    product = np.eye(n)
    for t in range(tau):
        step = one_peer_matrix(n, t)
        np.testing.assert_allclose(step.sum(axis=0), 1.0)  # doubly stochastic ...
        np.testing.assert_allclose(step.sum(axis=1), 1.0)
        assert t == tau - 1 or not np.allclose(step, step.T)  # ... not symmetric (the shift by n/2 is)
        product = step @ product
    np.testing.assert_allclose(product, np.full((n, n), 1 / n), atol=1e-15)
    np.testing.assert_array_equal(one_peer_matrix(n, tau), one_peer_matrix(n, 0))  # the schedule repeats


def test_dpsgd_on_a_complete_graph_is_fedavg_averaging() -> None:
    """W = 11^T/n mixes to exactly the mean; D-PSGD's step is then FedAvg's averaged models minus
    each node's own gradient step."""
    n = 8
    weights = metropolis_hastings(graphs.complete(n))
    np.testing.assert_allclose(weights, np.full((n, n), 1 / n))
    models = np.random.default_rng(2).normal(size=(n, 6))
    gradients = np.random.default_rng(3).normal(size=(n, 6))
    np.testing.assert_allclose(gossip_step(weights, models), np.tile(models.mean(axis=0), (n, 1)), atol=1e-14)
    # Local step first, then mixing: every node holds FedAvg's model (mean of the local models).
    local = models - 0.1 * gradients
    np.testing.assert_allclose(gossip_step(weights, local), np.tile(local.mean(axis=0), (n, 1)), atol=1e-14)
    np.testing.assert_allclose(dpsgd_step(weights, models, gradients, 0.1),
                               np.tile(models.mean(axis=0), (n, 1)) - 0.1 * gradients, atol=1e-14)


def test_pairwise_gossip_keeps_the_mean_and_converges() -> None:
    graph = graphs.ring(10)
    schedule = pairwise_schedule(graph, until=200.0, seed=5)
    assert schedule == pairwise_schedule(graph, until=200.0, seed=5)
    times = [t for t, _, _ in schedule]
    assert times == sorted(times) and times[-1] < 200.0
    assert len(schedule) == pytest.approx(10 * 200, rel=0.1)  # n clocks of rate 1
    assert all(graph.has_edge(i, j) for _, i, j in schedule)
    models = np.arange(10.0)[:, None]
    for _, i, j in schedule:
        models = pairwise_step(models, i, j)
    np.testing.assert_allclose(models.mean(), 4.5)
    assert consensus_distance(models) < 1e-3 * consensus_distance(np.arange(10.0)[:, None])


def test_consensus_distance_is_the_root_mean_square_distance_to_the_mean() -> None:
    models = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0], [1.0, -3.0]])
    assert consensus_distance(models) == pytest.approx(math.sqrt((1 + 1 + 9 + 9) / 4))


def test_the_round_record_and_bytes_per_node() -> None:
    weights = metropolis_hastings(graphs.ring(4))
    models = np.array([[1.0], [0.0], [0.0], [3.0]])
    record = round_record(weights, models, accuracy=lambda m: float(1 - abs(m[0] - 1) / 4))
    assert record == pytest.approx({"consensus_distance": consensus_distance(models),
                                    "contraction_rate": 1 - spectral_gap(weights),
                                    "accuracy_of_mean": 1.0, "mean_node_accuracy": (1 + 0.75 + 0.75 + 0.5) / 4,
                                    "worst_node_accuracy": 0.5})
    assert bytes_sent(weights, 100).tolist() == [200] * 4  # degree x model bytes
    assert bytes_sent(one_peer_matrix(8, 0), 100).tolist() == [100] * 8  # one peer each step
    assert bytes_sent(metropolis_hastings(graphs.exponential(16)), 10).tolist() == [70] * 16


def test_expected_pairwise_matrix_is_doubly_stochastic_and_contracts_like_the_samples() -> None:
    graph = graphs.ring(8)
    expected = pairwise_expected(graph)
    np.testing.assert_allclose(expected.sum(axis=0), 1.0)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0)
    assert 0 < spectral_gap(expected) < 1
    # the sampled schedule averages out to the same matrix (one node waking per unit of rate n)
    total, draws = np.zeros((8, 8)), 0
    schedule = pairwise_schedule(graph, 2000.0, seed=0)
    for _, i, j in schedule:
        total += pairwise_step(np.eye(8), i, j)
        draws += 1
    np.testing.assert_allclose(total / draws, expected, atol=0.01)


def test_contraction_rate_has_one_meaning_in_every_gossip_mode() -> None:
    """Issue 24 (6): the recorded rate is the per-round contraction of the consensus distance.
    On ring-16 the synchronous rate is 1 - rho = 0.949 and pairwise gossip's is on the same scale
    (not the squared distance's, nor 1 minus it); the one-peer exponential graph averages exactly
    over its period of 4 rounds, so its rate is 0: the best mixer reads best."""
    ring = graphs.ring(16)
    sync, pairwise = contraction_rate([metropolis_hastings(ring)]), pairwise_contraction(ring)
    assert sync == pytest.approx((1 + 2 * math.cos(math.pi / 8)) / 3, abs=1e-12)
    assert 0.94 < sync < pairwise < 0.97
    lambda_2 = 1 - spectral_gap(pairwise_expected(ring))  # sqrt of E[Xi^2] <= lambda_2^N, N ~ Poisson(16)
    assert pairwise == pytest.approx(math.sqrt(math.exp(-16 * (1 - lambda_2))), rel=1e-12)
    assert one_peer_contraction(16) == pytest.approx(0.0, abs=1e-12)
    assert one_peer_contraction(16) < contraction_rate([metropolis_hastings(graphs.exponential(16))]) < sync
    # no single one-peer matrix averages: a per-matrix figure would rank the best mixer worst
    assert min(contraction_rate([one_peer_matrix(16, t)]) for t in range(4)) > 0.98
    # n not a power of two: the period does not average exactly, and the rate is the period's per round
    period = [one_peer_matrix(12, t) for t in range(4)]
    product = period[3] @ period[2] @ period[1] @ period[0]
    assert one_peer_contraction(12) == pytest.approx(np.linalg.norm(product - 1 / 12, 2) ** 0.25, rel=1e-12)
    assert 0 < one_peer_contraction(12) < 1


def test_pairwise_rate_bounds_the_expected_contraction_of_sampled_runs() -> None:
    """sqrt(E[Xi_t^2]) / Xi_0 <= rate^t (a guarantee, as the synchronous rate is), checked on
    seeded schedules from the slowest mode of E[W]; the runs do contract, but no faster than the
    mean state E[x_t] - xbar, which shrinks by exp(-n (1 - lambda_2)) a round."""
    ring, n, rounds = graphs.ring(16), 16, 20
    slow = np.cos(2 * np.pi * np.arange(n) / n)[:, None]  # lambda_2's eigenvector
    squares = []
    for seed in range(100):
        models = slow
        for _, i, j in pairwise_schedule(ring, float(rounds), seed):
            models = pairwise_step(models, i, j)
        squares.append((consensus_distance(models) / consensus_distance(slow)) ** 2)
    lambda_2 = 1 - spectral_gap(pairwise_expected(ring))
    assert math.exp(-n * (1 - lambda_2)) ** rounds * 0.95 <= math.sqrt(np.mean(squares)) \
        <= pairwise_contraction(ring) ** rounds


def test_every_graph_a_scenario_may_name_has_a_generator() -> None:
    """The scenario's vocabulary (network/config.py, read without networkx) and the generators agree."""
    from raysim.network.config import GRAPHS

    assert set(GRAPHS) == {*graphs.STATIC, "erdos_renyi", "one_peer_exponential"}
    assert callable(graphs.erdos_renyi) and callable(graphs.one_peer_exponential)
