"""Client-edge-cloud federated averaging: HierFAVG (Liu, Zhang, Song, Letaief, ICC 2020,
arXiv:1905.06641).

Clients run kappa_1 local steps; each edge aggregator averages its clients' models weighted by
data size; after every kappa_2 edge aggregations the cloud averages the edge models weighted by
edge data size. The cloud therefore syncs every kappa_1 * kappa_2 local steps, and with
kappa_2 = 1 the two-level weighted average is exactly one-level FedAvg (a weighted mean of weighted
means, weights summing up). Which edge a client belongs to comes from the seed
(``rng(seed, Stream.TOPOLOGY, EDGE_DRAW)``, balanced) or from a given mapping (a trace).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from raysim.seeding import Stream, rng

EDGE_DRAW = 2  # key of Stream.TOPOLOGY draws for the client -> edge assignment


def assign_edges(num_clients: int, num_edges: int, seed: int, mapping: Mapping[int, int] | None = None) -> np.ndarray:
    """Each client's edge: a seeded balanced split (sizes differ by at most one), or ``mapping``
    checked to name every client once and only edges ``0..num_edges-1``, each edge used."""
    if not 1 <= num_edges <= num_clients:
        raise ValueError(f"num_edges must be in 1..num_clients ({num_clients}), got {num_edges}")
    if mapping is None:
        order = rng(seed, Stream.TOPOLOGY, EDGE_DRAW).permutation(num_clients)
        edges = np.empty(num_clients, dtype=np.int64)
        edges[order] = np.arange(num_clients) % num_edges
        return edges
    if sorted(mapping) != list(range(num_clients)):
        missing = sorted(set(range(num_clients)) - set(mapping))[:5]
        raise ValueError(f"the edge trace must name every client 0..{num_clients - 1} once (missing e.g. {missing})")
    edges = np.array([mapping[c] for c in range(num_clients)], dtype=np.int64)
    unused = sorted(set(range(num_edges)) - set(edges.tolist()))
    if edges.min() < 0 or edges.max() >= num_edges or unused:
        raise ValueError(f"the edge trace must use exactly the edges 0..{num_edges - 1} (unused: {unused[:5]}, "
                         f"out of range: {sorted(set(edges.tolist()) - set(range(num_edges)))[:5]})")
    return edges


def read_edge_trace(path: str) -> dict[int, int]:
    """client -> edge from a CSV with columns ``client_id`` and ``edge`` (whole numbers).

    Errors name the file and the line, never what it holds: the path comes from a scenario and
    may name any file (``/etc/passwd``), whose lines must not end up in a message.
    """
    mapping: dict[int, int] = {}
    try:
        with Path(path).expanduser().open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not {"client_id", "edge"} <= set(reader.fieldnames or ()):
                raise ValueError(f"edge_trace {path}: its first line must name the columns client_id and edge")
            for line, row in enumerate(reader, start=2):
                try:
                    client, edge = int(row["client_id"]), int(row["edge"])
                except (TypeError, ValueError):
                    raise ValueError(f"edge_trace {path} line {line}: client_id and edge must be whole "
                                     "numbers") from None
                if client in mapping:
                    raise ValueError(f"edge_trace {path} line {line}: client {client} is assigned twice")
                mapping[client] = edge
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"edge_trace {path} is not a readable UTF-8 CSV file ({type(exc).__name__})") from None
    return mapping


def weighted_average(models: np.ndarray, weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    if weights.sum() <= 0:
        raise ValueError("a weighted average needs a positive total weight")
    return np.tensordot(weights / weights.sum(), np.asarray(models, dtype=np.float64), axes=1)


def edge_average(models: np.ndarray, sizes: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(edge models, edge data sizes): each edge's size-weighted mean of its clients' models."""
    sizes = np.asarray(sizes, dtype=np.float64)
    count = int(edges.max()) + 1
    stacked = np.stack([weighted_average(models[edges == e], sizes[edges == e]) for e in range(count)])
    return stacked, np.bincount(edges, weights=sizes, minlength=count)


@dataclass(frozen=True)
class HierTraffic:
    """Messages and bytes per cloud round on each level (each way counted: down, then up)."""

    client_edge_messages: int
    client_edge_bytes: int
    edge_cloud_messages: int
    edge_cloud_bytes: int


def traffic(edges: np.ndarray, model_bytes: int, edge_rounds: int) -> HierTraffic:
    """Each edge round every client downloads and uploads one model; each cloud round every edge
    downloads and uploads one model."""
    clients, used = len(edges), len(np.unique(edges))
    return HierTraffic(2 * clients * edge_rounds, 2 * clients * edge_rounds * model_bytes, 2 * used, 2 * used * model_bytes)


def hierfavg(initial: np.ndarray, local_update: Callable[[int, np.ndarray, int], np.ndarray], sizes: np.ndarray,
             edges: np.ndarray, *, edge_rounds: int, cloud_rounds: int) -> list[np.ndarray]:
    """The cloud model after each cloud round. ``local_update(client, model, step)`` returns the
    client's model after its kappa_1 local steps (``step`` counts edge rounds from 0, for seeding)."""
    if edge_rounds < 1 or cloud_rounds < 1:
        raise ValueError(f"edge_rounds and cloud_rounds must be >= 1, got {edge_rounds}, {cloud_rounds}")
    cloud, history, step = np.asarray(initial, dtype=np.float64), [], 0
    for _ in range(cloud_rounds):
        edge_models = np.stack([cloud] * (int(edges.max()) + 1))
        for _ in range(edge_rounds):
            local = np.stack([local_update(c, edge_models[e], step) for c, e in enumerate(edges)])
            edge_models, edge_sizes = edge_average(local, sizes, edges)
            step += 1
        cloud = weighted_average(edge_models, edge_sizes)
        history.append(cloud)
    return history
