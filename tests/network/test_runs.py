"""The topologies end to end (issue 14, phase 2): scenarios with a ``[network]`` section run
through ``raysim.api.run`` in-process (one Ray run per round loop), and write their tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from raysim.api import run
from raysim.cli import main
from raysim.inputs import ConfigError
from raysim.scenario.sections import parse_scenario
from tests.conftest import tiny_table, whole_and_resumed

EVERYONE = {"selection": {"clients_per_round": 8}}  # the tiny scenario's 8 devices
METRICS = ["round", "test_accuracy", "test_loss", "train_loss"]


def _run(tmp_path, **sections):
    outcome = run(parse_scenario(tiny_table(**{**EVERYONE, **sections})), results_root=tmp_path)
    return outcome, pd.read_parquet(outcome.run_dir / "rounds.parquet")


def test_dpsgd_on_a_complete_graph_equals_fedavg_with_every_client(tmp_path):
    """MH weights on the complete graph are 11^T / n: one D-PSGD round is FedAvg's uniform mean
    of the same local steps (same seeds, same batches)."""
    _, fedavg = _run(tmp_path, server={"weighting": "uniform"})
    _, gossip = _run(tmp_path, network={"topology": "gossip", "graph": "complete"})
    pd.testing.assert_frame_equal(fedavg[METRICS], gossip[METRICS], atol=1e-6, rtol=0)
    assert gossip["consensus_distance"].max() < 1e-5
    assert gossip["contraction_rate"].iloc[0] == pytest.approx(0, abs=1e-9)  # W = 11^T / n averages at once
    assert "spectral_gap" not in gossip  # the old column, whose meaning changed with the mode, is gone


def test_hierfavg_with_one_edge_round_equals_fedavg(tmp_path):
    _, fedavg = _run(tmp_path)
    _, hier = _run(tmp_path, network={"topology": "hierarchical", "num_edges": 3, "edge_rounds": 1})
    pd.testing.assert_frame_equal(fedavg[METRICS], hier[METRICS], atol=1e-6, rtol=0)
    assert hier["cloud_round"].all() and (hier["edge_cloud_bytes"] == 2 * 3 * 4 * 610).all()


def test_gossip_on_a_ring_records_consensus_and_traffic_per_node(tmp_path):
    outcome, rounds = _run(tmp_path, run={"rounds": 3, "eval_every": 2},
                           network={"topology": "gossip", "graph": "ring", "eval_nodes": 3})
    assert (rounds["consensus_distance"] > 0).all()
    np.testing.assert_allclose(rounds["contraction_rate"], (1 + 2 * np.cos(2 * np.pi / 8)) / 3, rtol=1e-12)
    assert rounds["mean_node_accuracy"].notna().tolist() == [False, True, True]  # round 2, and the last
    assert (rounds["worst_node_accuracy"].dropna() <= rounds["mean_node_accuracy"].dropna()).all()
    nodes = pd.read_parquet(outcome.run_dir / "network.parquet")
    assert (nodes["bytes_out"] == 3 * 2 * 610 * 4).all()  # 3 rounds, 2 neighbours, the model's bytes


def test_pairwise_gossip_preserves_the_average_and_exchanges_on_the_clock(tmp_path):
    """Pairwise averaging keeps the nodes' mean: with no training (lr ~ 0) the averaged model
    equals the initial one; every exchange is two models, so bytes come in pairs of models."""
    outcome, rounds = _run(tmp_path, run={"rounds": 2}, client={"lr": 1e-12},
                           network={"topology": "gossip", "graph": "ring", "gossip_mode": "pairwise"})
    _, still = _run(tmp_path, run={"rounds": 2}, client={"lr": 1e-12})
    np.testing.assert_allclose(rounds["test_loss"], still["test_loss"], atol=1e-6)
    assert (rounds["bytes_up"] % (2 * 610 * 4) == 0).all() and (rounds["bytes_up"] > 0).all()
    assert 0 < rounds["contraction_rate"].iloc[0] < 1 and (rounds["sim_time"].diff().dropna() > 0).all()


def test_the_contraction_rate_ranks_the_gossip_modes_by_how_well_they_mix(tmp_path):
    """Issue 24 (6): one column, one meaning in every mode. The one-peer exponential graph on 8
    nodes averages exactly every 3 rounds, so it reads 0 every round (not 1 minus each round's
    own matrix's gap); pairwise gossip on the ring reads on the synchronous ring's scale."""
    one_peer = _run(tmp_path, run={"rounds": 3}, network={"topology": "gossip", "graph": "one_peer_exponential"})[1]
    sync = _run(tmp_path, run={"rounds": 3}, network={"topology": "gossip", "graph": "ring"})[1]
    pairwise = _run(tmp_path, run={"rounds": 3},
                    network={"topology": "gossip", "graph": "ring", "gossip_mode": "pairwise"})[1]
    np.testing.assert_allclose(one_peer["contraction_rate"], 0, atol=1e-12)
    assert sync["contraction_rate"].iloc[0] == pytest.approx(0.8047, abs=1e-4)  # (1 + 2 cos(pi / 4)) / 3
    assert sync["contraction_rate"].iloc[0] < pairwise["contraction_rate"].iloc[0] < 0.9  # same scale


def test_star_is_the_default_and_writes_no_network_tables(tmp_path):
    outcome, _ = _run(tmp_path, network={"topology": "star"})
    plain, _ = _run(tmp_path)
    assert not (outcome.run_dir / "network.parquet").exists()
    a, b = (pd.read_parquet(o.run_dir / "rounds.parquet") for o in (outcome, plain))
    pd.testing.assert_frame_equal(a.drop(columns=["wall_time", "round_wall_s"]), b.drop(columns=["wall_time", "round_wall_s"]))


def test_broker_time_grows_with_clients_and_qos_multiplies_packets(tmp_path):
    """Every model crosses a 10 kbit/s broker twice (down and up): a round of m clients takes at
    least 2 m B / beta on the broker's NIC, so simulated time grows linearly with the clients;
    QoS 2 sends twice QoS 1's packets."""
    broker = {"topology": "broker", "log_messages": True}
    per_model = 8 * 610 * 4 / 1e4  # seconds one model takes on the broker's 0.01 Mbit/s link
    times = []
    for clients in (2, 4, 8):
        _, rounds = _run(tmp_path, run={"rounds": 1}, selection={"clients_per_round": clients},
                         system={"seconds_per_sample": 1e-6}, network={**broker, "broker_mbps": 0.01})
        times.append(rounds["sim_time"].iloc[0])
        assert times[-1] >= 2 * clients * per_model
    assert times[2] - times[1] >= 0.9 * 2 * 4 * per_model and times[1] - times[0] >= 0.9 * 2 * 2 * per_model
    outcome, qos1 = _run(tmp_path, run={"rounds": 1}, network=broker)
    _, qos2 = _run(tmp_path, run={"rounds": 1}, network={**broker, "qos": 2})
    assert qos2["network_messages_total"].iloc[0] == 2 * qos1["network_messages_total"].iloc[0] == 2 * 8 * 8
    messages = pd.read_parquet(outcome.run_dir / "messages.parquet")
    assert len(messages) == 64 and set(messages["kind"]) == {"PUBLISH", "PUBACK"}
    nodes = pd.read_parquet(outcome.run_dir / "network.parquet").set_index("role")
    assert nodes.loc["broker", "bytes_in"] == nodes.loc["broker", "bytes_out"]


def test_ledger_chain_is_written_and_an_edited_block_is_found(tmp_path, capsys):
    outcome, rounds = _run(tmp_path, run={"rounds": 3}, network={"topology": "ledger", "block_interval_s": 5.0})
    assert (rounds["block_s"] > 0).all() and rounds["sim_time"].is_monotonic_increasing
    assert main(["verify", str(outcome.run_dir)]) == 0
    path = outcome.run_dir / "ledger.json"
    chain = json.loads(path.read_text())
    chain[1]["digests"][0] = "00" * 32
    path.write_text(json.dumps(chain))
    assert main(["verify", str(outcome.run_dir)]) == 1
    assert "block 1" in capsys.readouterr().err
    path.write_text("not json")
    assert main(["verify", str(outcome.run_dir)]) == 2
    assert main(["verify", str(tmp_path)]) == 2


def test_forked_ledger_rounds_wait_for_their_orphaned_blocks_and_resume_alike(tmp_path):
    """Issue 24 (9): with propagation as long as the block interval about half the races fork;
    a forked round's block time holds its orphaned races (fork_s) and the server waits for it.
    Forks use up more races than rounds, and a resumed run continues the same races."""
    forking = {"topology": "ledger", "block_interval_s": 1.0, "propagation_s": 1.0}
    whole, cut = whole_and_resumed(parse_scenario(tiny_table(run={"rounds": 4}, **EVERYONE, network=forking)),
                                   tmp_path, after=2)
    rounds, resumed = (pd.read_parquet(d / "rounds.parquet") for d in (whole, cut))
    pd.testing.assert_frame_equal(rounds.drop(columns=["wall_time", "round_wall_s"]),
                                  resumed.drop(columns=["wall_time", "round_wall_s"]))
    assert rounds["forked"].any() and (rounds["forked"] == (rounds["orphaned"] > 0)).all()
    assert ((rounds["fork_s"] > 0) == rounds["forked"]).all() and (rounds["block_s"] > rounds["fork_s"] + 1.0).all()
    assert (rounds["sim_time"].diff().fillna(rounds["sim_time"].iloc[0]) >= rounds["block_s"]).all()


def test_ledger_committee_rejects_the_worst_updates(tmp_path):
    _, rounds = _run(tmp_path, run={"rounds": 2},
                     network={"topology": "ledger", "consensus": "committee", "committee_size": 3, "reject": 2})
    assert (rounds["failed_rejected"] == 2).all() and (rounds["clients"] == 6).all()


@pytest.mark.parametrize("sections, words", [
    ({"network": {"topology": "gossip"}, "policy": {"kind": "async", "mode": "fedbuff", "buffer_size": 2}},
     "synchronous rounds"),
    ({"network": {"topology": "gossip"}, "privacy": {"secure_aggregation": "secagg"},
      "server": {"weighting": "uniform"}}, "[privacy]"),
    ({"network": {"topology": "hierarchical", "num_edges": 9}}, "num_edges = 9 exceeds"),
    ({"network": {"topology": "gossip", "graph": "torus"}}, "torus"),
    ({"network": {"topology": "broker"}, "policy": {"kind": "event", "threshold": 0.1}}, "event"),
])
def test_combinations_that_do_not_compose_are_refused_with_the_reason(sections, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_scenario(tiny_table(**{**EVERYONE, **sections}))


def test_gossip_needs_every_node(tiny):
    with pytest.raises(ConfigError, match="fraction = 1"):
        tiny(network={"topology": "gossip"})


@pytest.mark.ray
@pytest.mark.parametrize("network", [{"topology": "gossip", "graph": "exponential"},
                                     {"topology": "broker", "broker_mbps": 0.1}, {"topology": "ledger"}])
def test_topologies_run_on_ray_like_in_process(ray_runtime, tmp_path, network):
    local, local_rounds = _run(tmp_path, run={"rounds": 2}, network=network)
    remote, remote_rounds = _run(tmp_path, run={"rounds": 2, "executor": "ray"}, network=network)
    columns = [c for c in local_rounds.columns if c not in ("wall_time", "round_wall_s")]
    pd.testing.assert_frame_equal(local_rounds[columns], remote_rounds[columns])
    pd.testing.assert_frame_equal(*(pd.read_parquet(o.run_dir / "network.parquet") for o in (local, remote)))


@pytest.mark.parametrize("network", [
    {"topology": "broker", "log_messages": True}, {"topology": "gossip", "graph": "one_peer_exponential"},
    {"topology": "hierarchical", "num_edges": 2, "edge_rounds": 2}, {"topology": "ledger"},
])
def test_interrupted_network_runs_resume_to_the_same_results(tmp_path, network):
    """The links, the chain and the nodes' models are checkpointed (as data: checkpoint.py)."""
    whole, cut = whole_and_resumed(parse_scenario(tiny_table(run={"rounds": 4}, **EVERYONE, network=network)),
                                   tmp_path, after=2)
    for table in ("rounds", "network", "messages"):
        if (whole / f"{table}.parquet").exists():
            a, b = (pd.read_parquet(d / f"{table}.parquet") for d in (whole, cut))
            pd.testing.assert_frame_equal(a.drop(columns=["wall_time", "round_wall_s"], errors="ignore"),
                                          b.drop(columns=["wall_time", "round_wall_s"], errors="ignore"))
    assert (whole / "ledger.json").exists() == (cut / "ledger.json").exists()
    if (cut / "ledger.json").exists():
        assert main(["verify", str(cut)]) == 0


def test_hierarchical_edges_from_a_trace(tmp_path):
    """Edges 0 and 1 get 6 and 2 clients from the trace: each edge's NIC carries its own
    clients' downloads and uploads every round, and the cloud exchange every second round."""
    trace = tmp_path / "edges.csv"
    trace.write_text("client_id,edge\n" + "".join(f"{c},{int(c >= 6)}\n" for c in range(8)))
    outcome, rounds = _run(tmp_path, run={"rounds": 2},
                           network={"topology": "hierarchical", "num_edges": 2, "edge_trace": str(trace)})
    nodes = pd.read_parquet(outcome.run_dir / "network.parquet").set_index("node")
    model = 610 * 4
    assert nodes.loc[-10, "bytes_out"] == (2 * 6 + 1) * model and nodes.loc[-11, "bytes_out"] == (2 * 2 + 1) * model
    assert rounds["edge_cloud_bytes"].tolist() == [0, 4 * model]
