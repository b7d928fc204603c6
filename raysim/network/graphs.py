"""Seeded communication graphs for gossip learning, nodes ``0..n-1``.

Generators follow the reference (``shared/reference/network.md``): ring; 2-D torus; Erdos-Renyi
G(n, p) redrawn until connected (p2pfl draws unseeded and never checks, the pitfall this avoids);
the static exponential graph of Ying et al. (NeurIPS 2021, arXiv:2110.13363) in its symmetric
form ``i <-> i +- 2^k``; the complete graph; and the time-varying one-peer exponential graph, where
at step t node i talks to ``i + 2^(t mod tau)``, tau = ceil(log2 n). Every draw comes from
``rng(seed, Stream.TOPOLOGY, GRAPH_DRAW, attempt)``.
"""

from __future__ import annotations

import math
from typing import Callable

import networkx as nx

from raysim.network.limits import MAX_REDRAWS
from raysim.seeding import Stream, derive_seed

GRAPH_DRAW = 0  # first key of Stream.TOPOLOGY draws: graph generation (hierarchy and gossip use others)


def ring(n: int) -> nx.Graph:
    _at_least(n, 3, "a ring")
    return nx.cycle_graph(n)


def torus(n: int) -> nx.Graph:
    """sqrt(n) x sqrt(n) grid with wrap-around: 4 neighbours each (side >= 3 keeps them distinct)."""
    side = math.isqrt(n)
    if side * side != n or side < 3:
        raise ValueError(f"a 2-D torus needs n = s * s with s >= 3 (9, 16, 25, ...), got n = {n}")
    grid = nx.grid_2d_graph(side, side, periodic=True)
    return nx.relabel_nodes(grid, {(r, c): r * side + c for r, c in grid.nodes})


def exponential(n: int) -> nx.Graph:
    """i <-> i +- 2^k (mod n) for k = 0..ceil(log2 n) - 1."""
    _at_least(n, 2, "an exponential graph")
    graph = nx.empty_graph(n)
    for k in range(math.ceil(math.log2(n))):
        graph.add_edges_from((i, (i + 2 ** k) % n) for i in range(n) if (i + 2 ** k) % n != i)
    return graph


def complete(n: int) -> nx.Graph:
    _at_least(n, 2, "a complete graph")
    return nx.complete_graph(n)


def erdos_renyi(n: int, p: float, seed: int) -> nx.Graph:
    """G(n, p), redrawn with the next seeded attempt until connected."""
    _at_least(n, 2, "an Erdos-Renyi graph")
    if not 0 < p <= 1:
        raise ValueError(f"edge_probability must be in (0, 1], got {p}")
    for attempt in range(MAX_REDRAWS):
        graph = nx.gnp_random_graph(n, p, seed=derive_seed(seed, Stream.TOPOLOGY, GRAPH_DRAW, attempt))
        if nx.is_connected(graph):
            return graph
    raise ValueError(f"G({n}, {p}) was not connected in {MAX_REDRAWS} draws: raise edge_probability "
                     f"(connected w.h.p. above ln(n)/n = {math.log(n) / n:.3g})")


def one_peer_exponential(n: int, step: int) -> nx.DiGraph:
    """The one-peer exponential graph at ``step``: i -> i + 2^(step mod tau) (mod n)."""
    _at_least(n, 2, "a one-peer exponential graph")
    hop = 2 ** (step % math.ceil(math.log2(n)))
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((i, (i + hop) % n) for i in range(n))
    return graph


STATIC: dict[str, Callable[[int], nx.Graph]] = {"ring": ring, "torus": torus, "exponential": exponential,
                                                "complete": complete}


def build(kind: str, n: int, *, seed: int = 0, edge_probability: float | None = None) -> nx.Graph:
    """A static graph by name (``one_peer_exponential`` changes every step: use
    :func:`one_peer_exponential` or ``mixing.one_peer_matrix``)."""
    if kind == "erdos_renyi":
        if edge_probability is None:
            raise ValueError("graph = 'erdos_renyi' needs edge_probability (e.g. edge_probability = 0.3)")
        return erdos_renyi(n, edge_probability, seed)
    if kind not in STATIC:
        raise ValueError(f"graph = {kind!r} has no static graph; choose one of {[*STATIC, 'erdos_renyi']}")
    return STATIC[kind](n)


def _at_least(n: int, minimum: int, what: str) -> None:
    if n < minimum:
        raise ValueError(f"{what} needs at least {minimum} nodes, got {n}")
