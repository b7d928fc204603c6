"""Gossip mixing: weight matrices, the spectral gap, consensus distance and the update steps.

* Metropolis-Hastings weights, ``W_ij = 1 / (max(d_i, d_j) + 1)`` on edges and the rest on the
  diagonal: symmetric, hence doubly stochastic on any undirected graph, so gossip preserves the
  average (decentralizepy's ``_averaging``).
* Row-normalised weights ``(D + I)^-1 (A + I)`` (FedML's topology manager) are only row
  stochastic: they converge to a degree-weighted mean, not the average. Kept here so tests can
  show the difference; do not call it averaging.
* Spectral gap ``rho = 1 - ||W - 11^T/n||_2``: for symmetric doubly stochastic W this is
  ``1 - max(|lambda_2|, |lambda_n|)``, and one step contracts the distance to the mean by at most
  ``1 - rho`` (Boyd, Ghosh, Prabhakar, Shah, IEEE Trans. Inf. Theory 2006).
* Contraction rate, the one mixing figure a run records for every gossip mode: the factor by
  which a round shrinks the consensus distance at worst, per round. For a periodic sequence
  of doubly stochastic matrices it is ``||W_tau ... W_1 - 11^T/n||_2 ^ (1/tau)`` (the product's
  norm on the disagreement subspace, per round of the period): ``1 - rho`` for a static W, and
  0 for the one-peer exponential graph with n a power of two, which averages exactly in tau
  rounds although no single W_t does. Randomized pairwise gossip is random, so its rate bounds
  the expected distance instead: the square root of the second-moment bound
  ``E[Xi_{t+1}^2] <= exp(-n r (1 - lambda_2(E[W]))) Xi_t^2`` per round (n Poisson clocks of rate
  r; each exchange ``W = I - (e_i - e_j)(e_i - e_j)^T / 2`` is a projection, so
  ``E[W^T W] = E[W]``, Boyd et al. 2006), and ``E[Xi] <= sqrt(E[Xi^2])``.
* Consensus distance ``Xi_t`` with ``Xi_t^2 = (1/n) sum_i ||x_i - xbar||^2`` (Kong et al., ICML
  2021, arXiv:2102.04828).
* D-PSGD (Lian et al., NeurIPS 2017, arXiv:1705.09056): ``X <- W X - eta G``.
* Randomized pairwise gossip (Boyd et al. 2006): each node wakes at the ticks of its own rate-1
  Poisson clock on the simulated clock and averages with a uniformly drawn neighbour.
* One-peer exponential (Ying et al., arXiv:2110.13363): ``W_t = (I + P_t) / 2``, P_t the shift by
  ``2^(t mod tau)``; for n a power of two the product of tau consecutive W_t is ``11^T / n``.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Callable, Sequence

import networkx as nx
import numpy as np

from raysim.network.graphs import one_peer_exponential
from raysim.seeding import Stream, rng

PAIRWISE_DRAW = 1  # key of Stream.TOPOLOGY draws for the pairwise gossip schedule


def metropolis_hastings(graph: nx.Graph) -> np.ndarray:
    n = graph.number_of_nodes()
    degree = dict(graph.degree())
    weights = np.zeros((n, n))
    for i, j in graph.edges():
        if i != j:
            weights[i, j] = weights[j, i] = 1.0 / (max(degree[i], degree[j]) + 1)
    weights[np.diag_indices(n)] = 1.0 - weights.sum(axis=1)
    return weights


def row_normalised(graph: nx.Graph) -> np.ndarray:
    """``(D + I)^-1 (A + I)``: each node's uniform average over itself and its neighbours."""
    adjacency = nx.to_numpy_array(graph, nodelist=range(graph.number_of_nodes())) + np.eye(graph.number_of_nodes())
    return adjacency / adjacency.sum(axis=1, keepdims=True)


def one_peer_matrix(n: int, step: int) -> np.ndarray:
    """W_t of the one-peer exponential graph: each node keeps half and takes half from its peer."""
    weights = np.eye(n) / 2
    for i, peer in one_peer_exponential(n, step).edges():
        weights[i, peer] += 0.5
    return weights


def one_peer_period(n: int) -> int:
    """tau = ceil(log2 n): after tau steps the one-peer exponential schedule repeats."""
    return max(1, math.ceil(math.log2(n)))


def contraction_rate(period: Sequence[np.ndarray]) -> float:
    """Per-round worst-case contraction of the consensus distance under a periodic sequence of
    doubly stochastic matrices: ``||W_tau ... W_1 - 11^T/n||_2 ^ (1/tau)`` (0: exact average)."""
    n = period[0].shape[0]
    product = reduce(lambda acc, w: np.asarray(w, dtype=np.float64) @ acc, period, np.eye(n))
    return float(np.linalg.norm(product - np.full((n, n), 1.0 / n), 2)) ** (1.0 / len(period))


def one_peer_contraction(n: int) -> float:
    """The one-peer exponential graph's contraction rate over its period."""
    return contraction_rate([one_peer_matrix(n, t) for t in range(one_peer_period(n))])


def spectral_gap(weights: np.ndarray) -> float:
    """``1 - ||W - 11^T/n||_2``: one minus the contraction rate of a static W."""
    return 1.0 - contraction_rate([weights])


def consensus_distance(models: np.ndarray) -> float:
    """``Xi = sqrt((1/n) sum_i ||x_i - xbar||^2)`` for stacked models (one row a node)."""
    models = np.asarray(models, dtype=np.float64).reshape(len(models), -1)
    return float(np.sqrt(np.mean(np.sum((models - models.mean(axis=0)) ** 2, axis=1))))


def round_record(weights: np.ndarray, models: np.ndarray, accuracy: Callable[[np.ndarray], float]) -> dict:
    """The gossip row of one round: consensus distance, contraction rate, the accuracy of the
    averaged model, and the mean and worst accuracy over the nodes' own models."""
    models = np.asarray(models, dtype=np.float64)
    per_node = np.array([accuracy(m) for m in models])
    return {"consensus_distance": consensus_distance(models), "contraction_rate": contraction_rate([weights]),
            "accuracy_of_mean": float(accuracy(models.mean(axis=0))), "mean_node_accuracy": float(per_node.mean()),
            "worst_node_accuracy": float(per_node.min())}


def bytes_sent(weights: np.ndarray, model_bytes: int) -> np.ndarray:
    """Bytes each node sends in one mixing step: one model to every j != i with W_ji > 0."""
    sends = (np.asarray(weights) != 0).sum(axis=0) - (np.diag(weights) != 0)
    return sends * int(model_bytes)


def gossip_step(weights: np.ndarray, models: np.ndarray) -> np.ndarray:
    """One synchronous mixing step: node i takes ``sum_j W_ij x_j``."""
    return weights @ np.asarray(models, dtype=np.float64)


def dpsgd_step(weights: np.ndarray, models: np.ndarray, gradients: np.ndarray, lr: float) -> np.ndarray:
    """D-PSGD: mix with the neighbours, then step along each node's own gradient at its old model."""
    return gossip_step(weights, models) - lr * np.asarray(gradients, dtype=np.float64)


def pairwise_schedule(graph: nx.Graph, until: float, seed: int, *, rate: float = 1.0) -> list[tuple[float, int, int]]:
    """(time, i, j) of every pairwise exchange before ``until``: n independent Poisson clocks of
    ``rate`` merge into one of rate n * rate, the waking node drawn uniformly, its partner
    uniformly among its neighbours."""
    n = graph.number_of_nodes()
    neighbours = [sorted(graph.neighbors(i)) for i in range(n)]
    if any(not peers for peers in neighbours):
        raise ValueError("pairwise gossip needs every node to have a neighbour")
    draw = rng(seed, Stream.TOPOLOGY, PAIRWISE_DRAW)
    schedule, now = [], draw.exponential(1.0 / (n * rate))
    while now < until:
        i = int(draw.integers(n))
        schedule.append((float(now), i, neighbours[i][int(draw.integers(len(neighbours[i])))]))
        now += draw.exponential(1.0 / (n * rate))
    return schedule


def pairwise_expected(graph: nx.Graph) -> np.ndarray:
    """E[W] of one exchange of :func:`pairwise_schedule`: ``I - (e_i - e_j)(e_i - e_j)^T / 2``
    with i uniform and j a uniform neighbour of i (symmetric, doubly stochastic, PSD)."""
    n = graph.number_of_nodes()
    mean = np.eye(n)
    for i in range(n):
        peers = list(graph.neighbors(i))
        for j in peers:
            for a, b, sign in ((i, i, 1), (j, j, 1), (i, j, -1), (j, i, -1)):
                mean[a, b] -= sign / (2 * n * len(peers))
    return mean


def pairwise_contraction(graph: nx.Graph, *, rate: float = 1.0) -> float:
    """Per-round (unit of simulated time) contraction of the expected consensus distance under
    :func:`pairwise_schedule`: ``exp(-n rate (1 - lambda_2) / 2)``, lambda_2 = ``||E[W] - 11^T/n||``
    (see the module's docstring: the square root of the second-moment bound)."""
    n = graph.number_of_nodes()
    lambda_2 = 1.0 - spectral_gap(pairwise_expected(graph))
    return math.exp(-n * rate * (1.0 - lambda_2) / 2.0)


def pairwise_step(models: np.ndarray, i: int, j: int) -> np.ndarray:
    """Nodes i and j both take their average; the others keep theirs."""
    mixed = np.array(models, dtype=np.float64)
    mixed[[i, j]] = (mixed[i] + mixed[j]) / 2
    return mixed
