"""``[network]`` validation: defaults per topology, keys of other topologies refused, and messages
that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysim.network.config import NetworkConfig


def test_star_is_the_default_and_carries_no_other_keys() -> None:
    assert NetworkConfig().keys() == {"topology": "star", "log_messages": False}


@pytest.mark.parametrize("given, expected", [
    ({"topology": "broker"}, {"broker_mbps": 100.0, "broker_latency_s": 0.001, "broker_overhead_s": 0.0001, "qos": 1}),
    ({"topology": "gossip"}, {"graph": "ring", "gossip_mode": "sync", "eval_nodes": 0}),
    ({"topology": "gossip", "graph": "erdos_renyi", "edge_probability": 0.2},
     {"graph": "erdos_renyi", "edge_probability": 0.2, "gossip_mode": "sync", "eval_nodes": 0}),
    ({"topology": "hierarchical", "num_edges": 3}, {"num_edges": 3, "edge_rounds": 2, "edge_trace": "", "edge_mbps": 1000.0}),
    ({"topology": "ledger"}, {"consensus": "pow", "miners": 4, "block_interval_s": 10.0, "propagation_s": 0.5}),
    ({"topology": "ledger", "consensus": "committee"}, {"consensus": "committee", "committee_size": 3, "reject": 1}),
])
def test_each_topology_gets_its_defaults(given: dict, expected: dict) -> None:
    config = NetworkConfig(**given)
    assert config.keys() == {"topology": given["topology"], "log_messages": False, **expected}
    assert NetworkConfig(**config.keys()) == config  # what a run writes loads back as the same config


@pytest.mark.parametrize("given, message", [
    ({"topology": "mesh"}, "topology = 'mesh' is unknown; choose one of"),
    ({"log_messages": "yes"}, "log_messages must be true or false"),
    ({"topology": "gossip", "qos": 2}, "qos is a key of topology = 'broker', not of topology = 'gossip': remove it"),
    ({"num_edges": 2}, "num_edges is a key of topology = 'hierarchical', not of topology = 'star'"),
    ({"topology": "ledger", "consensus": "committee", "miners": 3}, "miners is a key of topology = 'ledger' with "
                                                                    "consensus = 'pow'"),
    ({"topology": "ledger", "consensus": "raft"}, "consensus = 'raft' is unknown"),
    ({"topology": "broker", "qos": 3}, "qos must be 0, 1 or 2"),
    ({"topology": "broker", "broker_mbps": 0.0}, "broker_mbps must be > 0"),
    ({"topology": "broker", "broker_overhead_s": -1.0}, "broker_overhead_s must be >= 0"),
    ({"topology": "broker", "broker_mbps": "fast"}, "broker_mbps must be > 0"),
    ({"topology": "gossip", "graph": "hypercube"}, "graph = 'hypercube' is unknown; choose one of"),
    ({"topology": "gossip", "graph": "erdos_renyi"}, r"needs edge_probability \(e.g. edge_probability = 0.3\)"),
    ({"topology": "gossip", "graph": "ring", "edge_probability": 0.3}, "edge_probability is a key of graph = 'erdos_renyi'"),
    ({"topology": "gossip", "graph": "erdos_renyi", "edge_probability": 1.5}, r"edge_probability must be in \(0, 1\]"),
    ({"topology": "gossip", "gossip_mode": "async"}, "gossip_mode = 'async' is unknown"),
    ({"topology": "gossip", "graph": "one_peer_exponential", "gossip_mode": "pairwise"}, "use gossip_mode = 'sync'"),
    ({"topology": "hierarchical"}, r"needs num_edges \(e.g. num_edges = 4\)"),
    ({"topology": "hierarchical", "num_edges": 0}, "num_edges must be a whole number >= 1"),
    ({"topology": "hierarchical", "num_edges": 2, "edge_rounds": 1.5}, "edge_rounds must be a whole number"),
    ({"topology": "hierarchical", "num_edges": 2, "edge_trace": "/no/such/edges.csv"}, "does not exist; give a CSV"),
    ({"topology": "ledger", "block_interval_s": 0.0}, "block_interval_s must be > 0"),
    ({"topology": "ledger", "consensus": "committee", "reject": -1}, "reject must be a whole number >= 0"),
])
def test_bad_values_are_refused_naming_the_key_and_the_fix(given: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NetworkConfig(**given)


def test_an_edge_trace_that_exists_is_accepted(tmp_path: Path) -> None:
    trace = tmp_path / "edges.csv"
    trace.write_text("client_id,edge\n0,0\n")
    assert NetworkConfig(topology="hierarchical", num_edges=1, edge_trace=str(trace)).edge_trace == str(trace)


@pytest.mark.parametrize("given, clients, message", [
    ({"topology": "gossip", "graph": "torus"}, 20, "needs num_clients = s \\* s"),
    ({"topology": "gossip", "graph": "ring"}, 2, "needs more nodes"),
    ({"topology": "hierarchical", "num_edges": 5}, 4, "num_edges = 5 exceeds num_clients = 4"),
    ({"topology": "ledger", "consensus": "committee", "committee_size": 6}, 5, "committee_size = 6 exceeds"),
    ({"topology": "ledger", "consensus": "committee", "reject": 3}, 3, "would drop every update"),
])
def test_rules_that_need_the_number_of_clients(given: dict, clients: int, message: str) -> None:
    config = NetworkConfig(**given)
    with pytest.raises(ValueError, match=message):
        config.check_population(clients)
    config.check_population(25 if config.graph == "torus" else 100)


def test_miner_rates_give_the_block_interval() -> None:
    rates = NetworkConfig(topology="ledger", miners=5, block_interval_s=4.0).miner_rates()
    assert rates == [0.05] * 5 and sum(rates) == pytest.approx(1 / 4.0)
    with pytest.raises(ValueError, match="consensus = 'pow'"):
        NetworkConfig(topology="ledger", consensus="committee").miner_rates()
