"""``[network]``: how nodes talk. ``topology`` picks the protocol; each topology has its own keys,
and a key of another topology is refused (a typo or a leftover would otherwise be ignored).

=============  ==================================================================================
star           today's behaviour: clients talk to the server over their own links
broker         MQTT publish/subscribe through a broker: ``broker_mbps``, ``broker_latency_s``,
               ``broker_overhead_s`` (per PUBLISH handled), ``qos`` (0, 1, 2)
gossip         no server: ``graph`` (ring, torus, erdos_renyi + ``edge_probability``, exponential,
               complete, one_peer_exponential), ``gossip_mode`` (sync D-PSGD, or pairwise),
               ``eval_nodes`` (node models scored per evaluated round; 0: every node)
hierarchical   HierFAVG: ``num_edges``, ``edge_rounds`` (kappa_2), ``edge_trace`` (CSV client_id,edge;
               empty: assigned from the seed), ``edge_mbps`` (each edge aggregator's NIC)
ledger         ``consensus`` = pow (``miners``, ``block_interval_s``, ``propagation_s``) or committee
               (``committee_size``, ``reject``)
=============  ==================================================================================

Keys left out get the defaults below; ``check_population`` holds the rules that need the number
of clients (the scenario's cross-section rules call it). Bandwidths, latencies, miners and
Erdos-Renyi graphs are held to the ranges of ``limits.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from raysim.inputs import is_file
from raysim.network.limits import (MAX_BLOCK_INTERVAL_S, MAX_GOSSIP_NODES, MAX_MINERS, check_connectable, check_latency,
                                   check_mbps)

TOPOLOGIES = ("star", "broker", "gossip", "hierarchical", "ledger")
# gossip graphs (network/graphs.py builds them; named here so that reading a scenario needs no networkx)
GRAPHS = ("ring", "torus", "exponential", "complete", "erdos_renyi", "one_peer_exponential")
# key -> (topology, consensus or None, default); edge_probability has none (only erdos_renyi uses it).
OWNED = {
    "broker_mbps": ("broker", None, 100.0), "broker_latency_s": ("broker", None, 0.001),
    "broker_overhead_s": ("broker", None, 0.0001), "qos": ("broker", None, 1),
    "graph": ("gossip", None, "ring"), "edge_probability": ("gossip", None, None), "gossip_mode": ("gossip", None, "sync"),
    "eval_nodes": ("gossip", None, 0),
    "num_edges": ("hierarchical", None, None), "edge_rounds": ("hierarchical", None, 2),
    "edge_trace": ("hierarchical", None, ""), "edge_mbps": ("hierarchical", None, 1000.0),
    "consensus": ("ledger", None, "pow"), "miners": ("ledger", "pow", 4), "block_interval_s": ("ledger", "pow", 10.0),
    "propagation_s": ("ledger", "pow", 0.5), "committee_size": ("ledger", "committee", 3), "reject": ("ledger", "committee", 1),
}
REQUIRED = {"num_edges": "num_edges = 4"}  # keys with no sensible default, and an example


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """The ``[network]`` section; keys of the chosen topology are filled with their defaults, the
    others stay None (and :meth:`keys` leaves them out)."""

    topology: str = "star"
    log_messages: bool = False  # keep the full messages table (one row a message)
    broker_mbps: float | None = None
    broker_latency_s: float | None = None
    broker_overhead_s: float | None = None
    qos: int | None = None
    graph: str | None = None
    edge_probability: float | None = None
    gossip_mode: str | None = None
    eval_nodes: int | None = None
    num_edges: int | None = None
    edge_rounds: int | None = None
    edge_trace: str | None = None
    edge_mbps: float | None = None
    consensus: str | None = None
    miners: int | None = None
    block_interval_s: float | None = None
    propagation_s: float | None = None
    committee_size: int | None = None
    reject: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.log_messages, bool):
            raise ValueError(f"log_messages must be true or false, got {self.log_messages!r}")
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"topology = {self.topology!r} is unknown; choose one of {list(TOPOLOGIES)}")
        if self.topology == "ledger" and self.consensus not in (None, "pow", "committee"):
            raise ValueError(f"consensus = {self.consensus!r} is unknown; choose 'pow' or 'committee'")
        consensus = (self.consensus or "pow") if self.topology == "ledger" else None
        for name, (topology, needs_consensus, default) in OWNED.items():
            given = getattr(self, name) is not None
            mine = topology == self.topology and needs_consensus in (None, consensus)
            if given and not mine:
                where = f"topology = {topology!r}" + (f" with consensus = {needs_consensus!r}" if needs_consensus else "")
                raise ValueError(f"{name} is a key of {where}, not of topology = {self.topology!r}"
                                 + (f" with consensus = {consensus!r}" if consensus else "") + ": remove it")
            if mine and not given:
                if name in REQUIRED:
                    raise ValueError(f"topology = {topology!r} needs {name} (e.g. {REQUIRED[name]})")
                object.__setattr__(self, name, default)
        getattr(self, f"_check_{self.topology}", lambda: None)()

    def _check_broker(self) -> None:
        check_mbps("broker_mbps", self.broker_mbps)
        check_latency("broker_latency_s", self.broker_latency_s)
        check_latency("broker_overhead_s", self.broker_overhead_s)
        if self.qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2 (MQTT QoS levels), got {self.qos!r}")

    def _check_gossip(self) -> None:
        if self.graph not in GRAPHS:
            raise ValueError(f"graph = {self.graph!r} is unknown; choose one of {list(GRAPHS)}")
        if self.graph == "erdos_renyi" and self.edge_probability is None:
            raise ValueError("graph = 'erdos_renyi' needs edge_probability (e.g. edge_probability = 0.3)")
        if self.graph != "erdos_renyi" and self.edge_probability is not None:
            raise ValueError(f"edge_probability is a key of graph = 'erdos_renyi', not of {self.graph!r}: remove it")
        if self.edge_probability is not None and not (_number(self.edge_probability) and 0 < self.edge_probability <= 1):
            raise ValueError(f"edge_probability must be in (0, 1], got {self.edge_probability}")
        if self.gossip_mode not in ("sync", "pairwise"):
            raise ValueError(f"gossip_mode = {self.gossip_mode!r} is unknown; choose 'sync' (D-PSGD) or 'pairwise'")
        _whole("eval_nodes", self.eval_nodes, 0)
        if self.gossip_mode == "pairwise" and self.graph == "one_peer_exponential":
            raise ValueError("gossip_mode = 'pairwise' draws edges of a static graph; one_peer_exponential changes "
                             "every step: use gossip_mode = 'sync' or another graph")

    def _check_hierarchical(self) -> None:
        _whole("num_edges", self.num_edges, 1)
        _whole("edge_rounds", self.edge_rounds, 1)
        check_mbps("edge_mbps", self.edge_mbps)
        if self.edge_trace and not is_file("edge_trace", self.edge_trace):
            raise ValueError(f"edge_trace = '{self.edge_trace}' does not exist; give a CSV path (client_id,edge) "
                             "or leave it empty to assign edges from the seed")

    def _check_ledger(self) -> None:
        if self.consensus == "pow":
            _whole("miners", self.miners, 1, MAX_MINERS)
            _positive("block_interval_s", self.block_interval_s, MAX_BLOCK_INTERVAL_S)
            check_latency("propagation_s", self.propagation_s)
        else:
            _whole("committee_size", self.committee_size, 1)
            _whole("reject", self.reject, 0)

    def check_population(self, num_clients: int) -> None:
        """The rules that need the number of clients."""
        if self.topology == "gossip" and self.graph == "torus" and (math.isqrt(num_clients) ** 2 != num_clients
                                                                    or num_clients < 9):
            raise ValueError(f"graph = 'torus' needs num_clients = s * s with s >= 3, got {num_clients}: "
                             "change num_clients or the graph")
        if self.topology == "gossip" and num_clients < (3 if self.graph == "ring" else 2):
            raise ValueError(f"graph = {self.graph!r} needs more nodes than num_clients = {num_clients}")
        if self.topology == "gossip" and num_clients > MAX_GOSSIP_NODES:
            raise ValueError(f"topology = 'gossip' mixes with a dense num_clients x num_clients matrix: at most "
                             f"{MAX_GOSSIP_NODES} nodes, got num_clients = {num_clients}; lower data.num_clients")
        if self.topology == "gossip" and self.graph == "erdos_renyi":
            check_connectable(num_clients, self.edge_probability)
        if self.topology == "gossip" and self.eval_nodes > num_clients:
            raise ValueError(f"eval_nodes = {self.eval_nodes} exceeds num_clients = {num_clients}: lower it (0: every node)")
        if self.topology == "hierarchical" and self.num_edges > num_clients:
            raise ValueError(f"num_edges = {self.num_edges} exceeds num_clients = {num_clients}: every edge needs a client")
        if self.topology == "ledger" and self.consensus == "committee":
            if self.committee_size > num_clients:
                raise ValueError(f"committee_size = {self.committee_size} exceeds num_clients = {num_clients}")
            if self.reject >= num_clients:
                raise ValueError(f"reject = {self.reject} would drop every update of {num_clients} clients: lower it")

    def miner_rates(self) -> list[float]:
        """PoW: each of ``miners`` equal miners finds blocks at rate 1 / (miners * block_interval_s),
        so the network finds one every ``block_interval_s`` on average (Lambda = 1 / interval)."""
        if self.topology != "ledger" or self.consensus != "pow":
            raise ValueError("miner_rates belongs to topology = 'ledger' with consensus = 'pow'")
        return [1.0 / (self.miners * self.block_interval_s)] * self.miners

    def keys(self) -> dict:
        """The keys in use (those of other topologies left out), for the run's written config."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(name: str, value: float, maximum: float) -> None:
    if not (_number(value) and 0 < value <= maximum):
        raise ValueError(f"{name} must be > 0 (and at most {maximum:g}), got {value}")


def _whole(name: str, value: int, minimum: int, maximum: int | None = None) -> None:
    whole = isinstance(value, int) and not isinstance(value, bool)
    if not whole or value < minimum or (maximum is not None and value > maximum):
        most = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be a whole number >= {minimum}{most}, got {value!r}")
