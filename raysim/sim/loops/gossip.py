"""Gossip learning without a server: D-PSGD (Lian et al., NeurIPS 2017, arXiv:1705.09056) in its
"local step first, then gossip" form. Each round every node trains from its own model, sends
the result to its neighbours, and takes ``x_i <- sum_j W_ij x_j`` with Metropolis-Hastings weights
over the seeded graph (``network/graphs.py``, ``network/mixing.py``), or the one-peer
exponential graph's ``W_t`` (Ying et al., arXiv:2110.13363), which changes every round.

Every node's NIC is a queue of the transport, so a node sends its ``deg_i`` models one after
the other on its uplink: denser graphs mix faster but take longer per round, which is the
trade-off the comparison measures. Each round records the consensus distance over all nodes
(Kong et al., arXiv:2102.04828), the mixing's ``contraction_rate`` (one meaning in every mode:
the per-round factor by which the mixing shrinks the consensus distance at worst, over the
graph's period, ``mixing.contraction_rate``; lower mixes better), and on evaluated rounds the
task's metrics of the nodes' average and the mean and worst of its primary metric (accuracy)
over the nodes' own models (all nodes, or ``network.eval_nodes`` drawn from the seed, as each
costs one test-set pass).

``gossip_mode = "pairwise"`` replaces the synchronous mixing by randomized pairwise gossip
(Boyd, Ghosh, Prabhakar, Shah 2006): every node's rate-1 Poisson clock (one unit = one round)
wakes it to average with a uniformly drawn neighbour (``mixing.pairwise_schedule``, drawn once
from the seed). An exchange starts when both nodes are trained and done with their earlier
exchanges, so the round ends with its last exchange on the clock; its contraction rate bounds
the expected consensus distance (``mixing.pairwise_contraction``: the square root of the
second-moment bound, on the scale of the synchronous rate).
"""

from __future__ import annotations

import numpy as np

from raysim.models.learning_task import primary
from raysim.network.graphs import build
from raysim.network.mixing import (
    consensus_distance, contraction_rate, metropolis_hastings, one_peer_contraction, one_peer_matrix,
    pairwise_contraction, pairwise_schedule, pairwise_step,
)
from raysim.network.transport import Transport
from raysim.seeding import Stream, rng
from raysim.sim.cost.links import client_links
from raysim.sim.loops.nodes import NodeRounds, traffic_mark, traffic_since

EVAL_DRAW = 3  # key of Stream.TOPOLOGY draws: which nodes' models are scored


class GossipRounds(NodeRounds):
    """``network.topology = "gossip"`` (see the module's docstring)."""

    def _transport(self) -> Transport:
        n = len(self.sizes)
        config = self.network
        self.static, self.exchanges = None, None
        if config.graph == "one_peer_exponential":
            self.contraction = one_peer_contraction(n)
        else:
            graph = build(config.graph, n, seed=self.seed, edge_probability=config.edge_probability)
            self.static = metropolis_hastings(graph)
            self.contraction = contraction_rate([self.static])
            if config.gossip_mode == "pairwise":  # each round's exchanges, in the order of their ticks
                self.exchanges = [[] for _ in range(self.limits.rounds)]
                for at, i, j in pairwise_schedule(graph, self.limits.rounds, self.seed):
                    self.exchanges[int(at)].append((i, j))
                self.contraction = pairwise_contraction(graph)
        return Transport(client_links(self.population, range(n)), shared=tuple(range(n)), log=False)

    def _weights(self, round_number: int) -> np.ndarray:
        return self.static if self.static is not None else one_peer_matrix(len(self.sizes), round_number - 1)

    def _communicate(self, ready: np.ndarray, round_number: int) -> tuple[float, dict]:
        """Node i sends its local model to every j with W_ji > 0 once it is trained; node j can
        mix once its own model and all of its neighbours' have arrived. Pairwise: the two nodes
        of an exchange swap models once both are free."""
        before, done = traffic_mark(self.transport), ready.copy()
        if self.exchanges is not None:
            for i, j in self.exchanges[round_number - 1]:
                at = float(max(done[i], done[j]))
                there = self.transport.send(i, j, self.model_bytes, at, "model").arrival
                done[i] = done[j] = max(there, self.transport.send(j, i, self.model_bytes, at, "model").arrival)
            return float(done.max()), traffic_since(self.transport, before)
        weights = self._weights(round_number)
        for i in range(len(self.sizes)):
            for j in np.flatnonzero(weights[:, i]):
                if j != i:
                    arrival = self.transport.send(i, int(j), self.model_bytes, float(ready[i]), "model").arrival
                    done[j] = max(done[j], arrival)
        return float(done.max()), traffic_since(self.transport, before)

    def _combine(self, local: np.ndarray, round_number: int) -> tuple[np.ndarray, np.ndarray, dict]:
        if self.exchanges is not None:
            mixed = local
            for i, j in self.exchanges[round_number - 1]:
                mixed = pairwise_step(mixed, i, j)
        else:
            mixed = self._weights(round_number) @ local
        return mixed, mixed.mean(axis=0), {"consensus_distance": consensus_distance(mixed),
                                           "contraction_rate": self.contraction}

    MODEL_CONTENT = "the mean of the nodes' models"
    CLIENT_CONTENT = "node {client}'s own model"

    def _average(self) -> np.ndarray:
        return self.models.mean(axis=0, dtype=np.float64)

    def client_models(self) -> dict[int, dict[str, np.ndarray]]:
        return {node: self.layout.named(model) for node, model in enumerate(self.models)}

    def _node_columns(self) -> dict:
        n, wanted = len(self.sizes), self.network.eval_nodes
        nodes = (np.arange(n) if not wanted or wanted >= n
                 else np.sort(rng(self.seed, Stream.TOPOLOGY, EVAL_DRAW, self.round).choice(n, wanted, replace=False)))
        metric, lower_is_better = primary(self.task)
        values = np.array([self._scores(self.models[i])[metric] for i in nodes])
        worst = values.max() if lower_is_better else values.min()
        return {f"mean_node_{metric}": float(values.mean()), f"worst_node_{metric}": float(worst),
                "nodes_evaluated": len(nodes)}
