"""HierFAVG: kappa_2 = 1 is one-level weighted FedAvg; edge assignment from the seed or a trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysim.network.hierarchy import assign_edges, edge_average, hierfavg, read_edge_trace, traffic, weighted_average

SIZES = np.array([10, 30, 5, 55, 20, 7, 13])
TARGETS = np.random.default_rng(0).normal(size=(len(SIZES), 4))
CURVATURE = np.random.default_rng(1).uniform(0.5, 2.0, size=len(SIZES))  # so edge models drift apart


def local_update(client: int, model: np.ndarray, step: int) -> np.ndarray:
    """kappa_1 = 3 gradient steps on 0.5 h_c ||w - target_c||^2, with a step-dependent rate."""
    lr = 0.3 / (1 + step)
    for _ in range(3):
        model = model - lr * CURVATURE[client] * (model - TARGETS[client])
    return model


def fedavg(initial: np.ndarray, rounds: int) -> list[np.ndarray]:
    model, history = initial, []
    for step in range(rounds):
        model = weighted_average(np.stack([local_update(c, model, step) for c in range(len(SIZES))]), SIZES)
        history.append(model)
    return history


@settings(max_examples=25, deadline=None)
@given(num_edges=st.integers(1, len(SIZES)), seed=st.integers(0, 2 ** 16))
def test_hierfavg_with_one_edge_round_is_one_level_fedavg(num_edges: int, seed: int) -> None:
    edges = assign_edges(len(SIZES), num_edges, seed=seed)
    hier = hierfavg(np.zeros(4), local_update, SIZES, edges, edge_rounds=1, cloud_rounds=5)
    for mine, theirs in zip(hier, fedavg(np.zeros(4), 5)):
        np.testing.assert_allclose(mine, theirs, atol=1e-13)


def test_more_edge_rounds_differ_and_sync_every_kappa1_kappa2_steps() -> None:
    edges = assign_edges(len(SIZES), 3, seed=4)
    calls = []

    def counted(client: int, model: np.ndarray, step: int) -> np.ndarray:
        calls.append(step)
        return local_update(client, model, step)

    hier = hierfavg(np.zeros(4), counted, SIZES, edges, edge_rounds=2, cloud_rounds=3)
    assert len(hier) == 3 and sorted(set(calls)) == list(range(6))  # 2 edge rounds a cloud round
    assert not np.allclose(hier[-1], fedavg(np.zeros(4), 6)[-1])


def test_edge_models_are_size_weighted_and_carry_their_data_size() -> None:
    models = np.arange(6.0)[:, None]
    edge_models, edge_sizes = edge_average(models, np.array([1, 3, 1, 1, 2, 2]), np.array([0, 0, 1, 1, 1, 0]))
    np.testing.assert_allclose(edge_models[:, 0], [(0 + 3 + 10) / 6, (2 + 3 + 8) / 4])
    np.testing.assert_allclose(edge_sizes, [6, 4])


def test_seeded_assignment_is_balanced_and_reproducible() -> None:
    edges = assign_edges(10, 3, seed=1)
    assert sorted(np.bincount(edges).tolist()) == [3, 3, 4]
    np.testing.assert_array_equal(edges, assign_edges(10, 3, seed=1))
    assert not np.array_equal(edges, assign_edges(10, 3, seed=2))


def test_a_trace_assignment_is_checked(tmp_path: Path) -> None:
    trace = tmp_path / "edges.csv"
    trace.write_text("client_id,edge\n0,1\n1,0\n2,1\n")
    mapping = read_edge_trace(str(trace))
    np.testing.assert_array_equal(assign_edges(3, 2, seed=0, mapping=mapping), [1, 0, 1])
    with pytest.raises(ValueError, match="every client"):
        assign_edges(4, 2, seed=0, mapping=mapping)
    with pytest.raises(ValueError, match="unused"):
        assign_edges(3, 3, seed=0, mapping=mapping)
    trace.write_text("client_id,edge\n0,1\n0,0\n")
    with pytest.raises(ValueError, match="assigned twice"):
        read_edge_trace(str(trace))
    trace.write_text("client,edge\n0,1\n")
    with pytest.raises(ValueError, match="columns"):
        read_edge_trace(str(trace))
    trace.write_text("client_id,edge\n0,x\n")
    with pytest.raises(ValueError, match="line 2"):
        read_edge_trace(str(trace))


def test_traffic_per_cloud_round_by_level() -> None:
    counted = traffic(np.array([0, 0, 1, 1, 1]), model_bytes=100, edge_rounds=4)
    assert (counted.client_edge_messages, counted.client_edge_bytes) == (40, 4000)
    assert (counted.edge_cloud_messages, counted.edge_cloud_bytes) == (4, 400)
