"""The one row builder (sim/kernel/table_rows.py): its column order, and that a column it adds appears
in the rounds and clients tables of every kind of run (star, gossip, hierarchy, vertical, Flower)."""

from __future__ import annotations

import copy
import importlib.util

import pandas as pd
import pytest

from raysim.api import run
from raysim.scenario.sections import parse_scenario
from raysim.sim.kernel import table_rows
from tests.conftest import tiny_table


def test_common_columns_keep_their_order_with_each_kinds_own_after_them():
    row = table_rows.round_row(round=2, sim_time=5.0, wall_time=0.1, samples=30, bytes_up=7,
                               statuses=["applied", "lost", "lost", "late"], failures=("lost", "late"),
                               after={"round": {"group_id": "g"}}, extra={"he_seconds": 1.0, "samples": 31})
    assert list(row) == ["round", "group_id", "sim_time", "wall_time", "samples", "bytes_up",
                         "failed_lost", "failed_late", "he_seconds"]
    assert row["samples"] == 31 and (row["failed_lost"], row["failed_late"]) == (2, 1)  # extra replaces in place


def test_a_fact_left_out_leaves_its_column_out_and_a_misspelt_anchor_is_refused():
    assert list(table_rows.client_row(round=1, client_id=3, status="trained", staleness=0)) == [
        "round", "client_id", "status", "staleness"]
    with pytest.raises(ValueError, match="stauts"):
        table_rows.client_row(round=1, after={"stauts": {"x": 1}})


def _star(tmp_path):
    return run(parse_scenario(tiny_table(run={"rounds": 2})), results_root=tmp_path)


def _nodes(network: dict):
    def go(tmp_path):
        table = tiny_table(run={"rounds": 2}, selection={"clients_per_round": 8}, network=network)
        return run(parse_scenario(table), results_root=tmp_path)
    return go


def _vertical(tmp_path):
    from raysim.scenario.vertical import parse_vertical
    from tests.vertical.test_scenario import GOOD

    table = copy.deepcopy(GOOD)
    table["vertical"].update(max_train=40, max_test=30)
    return run(parse_vertical(table), results_root=tmp_path)


def _flower(tmp_path):
    if importlib.util.find_spec("flwr") is None:
        pytest.skip("flwr is not installed")
    from tests.flower.test_flower_runs import scenario

    return run(scenario(run_config={"num-server-rounds": 1}), results_root=tmp_path)


KINDS = {"star": _star, "gossip": _nodes({"topology": "gossip", "graph": "ring"}),
         "hierarchy": _nodes({"topology": "hierarchical", "num_edges": 2, "edge_rounds": 1}),
         "vertical": _vertical, "flower": _flower}


@pytest.mark.parametrize("kind", KINDS)
def test_a_column_added_in_the_builder_appears_in_every_kind_of_run(kind, tmp_path, monkeypatch):
    def with_probe(build):
        return lambda **facts: {**build(**facts), "probe": facts["round"] * 10}

    monkeypatch.setattr(table_rows, "round_row", with_probe(table_rows.round_row))
    monkeypatch.setattr(table_rows, "client_row", with_probe(table_rows.client_row))
    outcome = KINDS[kind](tmp_path)
    for name in ("rounds", "clients"):
        frame = pd.read_parquet(outcome.run_dir / f"{name}.parquet")
        assert len(frame) and (frame["probe"] == frame["round"] * 10).all(), name
