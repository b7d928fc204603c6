"""Client-edge-cloud FL: HierFAVG (Liu, Zhang, Song, Letaief, ICC 2020, arXiv:1905.06641).

A run's round is one edge round: every client trains from its edge's model, each edge averages
its clients' models weighted by data size, and after every ``network.edge_rounds`` (kappa_2)
edge rounds the cloud averages the edge models weighted by edge data size and sends the result
back down. Edges come from the seed or from ``network.edge_trace`` (``network/hierarchy.py``).
The model scored each evaluated round is the data-weighted average of the edge models, which is
the cloud's model on cloud rounds; with kappa_2 = 1 the run is FedAvg over all clients.

Timing: an edge aggregator is a shared node with an ``edge_mbps`` NIC (its downloads to and
uploads from its clients queue there); the cloud link has no limit of its own. The round ends
when the last edge has its clients' updates, or on a cloud round when every edge has the cloud
model back. Client-edge and edge-cloud bytes are recorded separately.
"""

from __future__ import annotations

import numpy as np

from raysim.network.hierarchy import assign_edges, edge_average, read_edge_trace, weighted_average
from raysim.network.transport import Transport
from raysim.sim.cost.links import ROLES, SERVER, client_links, shared_link
from raysim.sim.loops.nodes import NodeRounds, traffic_mark, traffic_since

EDGE_BASE = -10  # edge e is node EDGE_BASE - e; clients are 0..n-1 and the cloud is SERVER


class HierRounds(NodeRounds):
    """``network.topology = "hierarchical"`` (see the module's docstring)."""

    def _transport(self) -> Transport:
        config, n = self.network, len(self.sizes)
        mapping = read_edge_trace(config.edge_trace) if config.edge_trace else None
        self.edges = assign_edges(n, config.num_edges, self.seed, mapping)
        links = client_links(self.population, range(n))
        links.update({EDGE_BASE - e: shared_link(config.edge_mbps) for e in range(config.num_edges)})
        return Transport(links, shared=tuple(EDGE_BASE - e for e in range(config.num_edges)), log=False)

    def _cloud_round(self, round_number: int) -> bool:
        return round_number % self.network.edge_rounds == 0

    def _communicate(self, ready: np.ndarray, round_number: int) -> tuple[float, dict]:
        """Each edge sends its model to its clients at the round's start; each client uploads
        once trained (its compute counted from the model's arrival); on a cloud round the edges
        then exchange models with the cloud."""
        start, before = self.clock.now, traffic_mark(self.transport)
        compute = ready - start
        edge_done: dict[int, float] = {}
        for client, edge in enumerate(self.edges):
            node = EDGE_BASE - int(edge)
            got = self.transport.send(node, client, self.model_bytes, start, "client-edge").arrival
            back = self.transport.send(client, node, self.model_bytes, got + compute[client], "client-edge").arrival
            edge_done[node] = max(edge_done.get(node, start), back)
        client_edge = traffic_since(self.transport, before)
        end = max(edge_done.values())
        if self._cloud_round(round_number):
            up = [self.transport.send(node, SERVER, self.model_bytes, t, "edge-cloud").arrival for node, t in edge_done.items()]
            synced = max(up)
            end = max(self.transport.send(SERVER, node, self.model_bytes, synced, "edge-cloud").arrival for node in edge_done)
        traffic = traffic_since(self.transport, before)
        below = sum(client_edge["sent"].values())
        traffic["columns"] = {"client_edge_bytes": below, "edge_cloud_bytes": sum(traffic["sent"].values()) - below}
        return end, traffic

    def _combine(self, local: np.ndarray, round_number: int) -> tuple[np.ndarray, np.ndarray, dict]:
        edge_models, edge_sizes = edge_average(local, self.sizes, self.edges)
        scored = weighted_average(edge_models, edge_sizes)
        cloud = self._cloud_round(round_number)
        models = np.repeat(scored[None], len(self.sizes), axis=0) if cloud else edge_models[self.edges]
        return models, scored, {"cloud_round": cloud}

    MODEL_CONTENT = "the edges' models averaged by their data (the cloud's model after a cloud round)"

    def _average(self) -> np.ndarray:
        """What ``_combine`` scores, from the clients' models (each its edge's)."""
        return weighted_average(*edge_average(self.models.astype(np.float64), self.sizes, self.edges))

    def _role(self, node: int) -> str:
        return "edge" if node <= EDGE_BASE else ROLES.get(node, "client")
