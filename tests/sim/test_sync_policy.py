"""Synchronous rounds on hand-computed timelines (see tests/timeline.py for the durations)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.sim.timeline import by_client, make_driver, run_all


def test_barrier_waits_for_the_slowest_client(tmp_path):
    driver, _ = make_driver(tmp_path, policy={"kind": "sync"})
    initial = driver.state.params.copy()
    (report,) = run_all(driver)
    rows = by_client(report)
    assert report.round_row["sim_time"] == pytest.approx(6.0)
    assert [rows[c]["end_time"] for c in range(4)] == pytest.approx([3.0, 4.0, 5.0, 6.0])
    assert all(r["status"] == "applied" and r["staleness"] == 0 for r in rows.values())
    # every client delta is +1, so the averaged delta is +1 whatever the weights
    np.testing.assert_allclose(driver.state.params - initial, 1.0, rtol=1e-6)


def test_deadline_drops_the_clients_that_would_miss_it_without_training_them(tmp_path):
    driver, executor = make_driver(tmp_path, policy={"kind": "sync", "deadline_s": 4.5})
    (report,) = run_all(driver)
    rows = by_client(report)
    assert report.round_row["sim_time"] == pytest.approx(4.5)
    assert {c: rows[c]["status"] for c in rows} == {0: "applied", 1: "applied", 2: "late", 3: "late"}
    assert sorted(c for _, _, c in executor.submitted) == [0, 1]
    assert report.round_row["failed_late"] == 2 and report.round_row["clients"] == 2


def test_over_selection_keeps_the_first_k_to_finish(tmp_path):
    driver, _ = make_driver(tmp_path, policy={"kind": "sync", "over_selection": 2.0}, per_round=2)
    (report,) = run_all(driver)
    rows = by_client(report)
    assert {c: rows[c]["status"] for c in rows} == {0: "applied", 1: "applied", 2: "excess", 3: "excess"}
    assert report.round_row["sim_time"] == pytest.approx(4.0)


def test_partial_work_runs_the_epochs_that_fit_before_the_deadline(tmp_path):
    # two epochs: 1 + 2n/100 + 1 = 4, 6, 8, 10 s; deadline 4.5 leaves 2.5 s of compute.
    driver, _ = make_driver(tmp_path, policy={"kind": "sync", "deadline_s": 4.5, "partial_work": True}, epochs=2)
    (report,) = run_all(driver)
    rows = by_client(report)
    assert (rows[0]["status"], rows[0]["epochs"], rows[0]["end_time"]) == ("applied", 2, pytest.approx(4.0))
    assert (rows[1]["status"], rows[1]["epochs"], rows[1]["end_time"]) == ("applied", 1, pytest.approx(4.0))
    assert rows[2]["status"] == rows[3]["status"] == "late"


def test_a_client_going_offline_delivers_nothing(tmp_path):
    driver, _ = make_driver(tmp_path, policy={"kind": "sync"}, availability={3: "0-5.5"})
    (report,) = run_all(driver)
    rows = by_client(report)
    assert rows[3]["status"] == "offline" and rows[3]["bytes_up"] == 0
    assert report.round_row["sim_time"] == pytest.approx(5.5)
    assert report.round_row["failed_offline"] == 1


def test_rounds_follow_each_other_on_the_simulated_clock(tmp_path):
    driver, executor = make_driver(tmp_path, policy={"kind": "sync"}, rounds=3)
    reports = run_all(driver)
    assert [r.round_row["sim_time"] for r in reports] == pytest.approx([6.0, 12.0, 18.0])
    assert [v for v, _, _ in executor.submitted] == [0] * 4 + [1] * 4 + [2] * 4


def test_partial_work_is_flagged_as_straggling(tmp_path):
    driver, _ = make_driver(tmp_path, policy={"kind": "sync", "deadline_s": 4.5, "partial_work": True}, epochs=2)
    (report,) = run_all(driver)
    rows = by_client(report)
    assert (rows[0]["straggler"], rows[1]["straggler"]) == (False, True)


def test_explicit_sync_and_homogeneous_devices_are_the_defaults(tiny, tmp_path):
    import pandas as pd

    from raysim.api import run

    implicit = run(tiny(), results_root=tmp_path)
    explicit = run(tiny(policy={"kind": "sync", "deadline_s": 0.0, "over_selection": 1.0},
                        system={"speed_distribution": "constant", "dropout": 0.0}), results_root=tmp_path)
    cols = ["round", "sim_time", "test_accuracy", "train_loss"]
    pd.testing.assert_frame_equal(pd.read_parquet(implicit.run_dir / "rounds.parquet")[cols],
                                  pd.read_parquet(explicit.run_dir / "rounds.parquet")[cols])


def _straggler_driver(tmp_path, drop: bool):
    from raysim.scenario.sections import parse_scenario
    from tests.sim.timeline import FakeExecutor, tiny_driver, write_trace

    scenario = parse_scenario({
        "run": {"name": "stragglers", "rounds": 1, "executor": "local"},
        "data": {"dataset": "fashion_mnist", "num_clients": 4},
        "client": {"epochs": 5, "straggler_fraction": 0.5},
        "server": {"drop_stragglers": drop},
        "selection": {"clients_per_round": 4},
        "system": {"trace": str(write_trace(tmp_path / "trace.csv"))},
    })
    return tiny_driver(scenario, FakeExecutor)


@pytest.mark.parametrize("drop", [False, True])
def test_fedprox_stragglers_run_fewer_epochs_and_fedavg_drops_them(tmp_path, drop):
    (report,) = run_all(_straggler_driver(tmp_path, drop))
    rows = by_client(report)
    stragglers = [c for c, r in rows.items() if r["epochs"] < 5]
    assert len(stragglers) == 2 and all(1 <= rows[c]["epochs"] <= 4 for c in stragglers)
    expected = "straggler" if drop else "applied"
    assert {rows[c]["status"] for c in stragglers} == {expected}
    assert {rows[c]["status"] for c in rows if c not in stragglers} == {"applied"}


def test_a_client_going_offline_after_the_deadline_is_late_at_the_deadline(tmp_path):
    """The server stops waiting at the deadline: client 3 (6 s task) would go offline at 5.5 s,
    after the 4.5 s deadline, so by then it has simply not answered. Before, its failure was
    planned at 5.5 s and held the round open past its deadline."""
    driver, _ = make_driver(tmp_path, policy={"kind": "sync", "deadline_s": 4.5}, availability={3: "0-5.5"})
    (report,) = run_all(driver)
    rows = by_client(report)
    assert {c: rows[c]["status"] for c in rows} == {0: "applied", 1: "applied", 2: "late", 3: "late"}
    assert report.round_row["sim_time"] == pytest.approx(4.5) and report.round_row["failed_offline"] == 0


def test_a_client_going_offline_before_the_deadline_stays_offline(tmp_path):
    driver, _ = make_driver(tmp_path, policy={"kind": "sync", "deadline_s": 4.5}, availability={3: "0-2.5"})
    (report,) = run_all(driver)
    assert by_client(report)[3]["status"] == "offline" and report.round_row["sim_time"] == pytest.approx(4.5)


def test_over_selection_closes_the_round_when_the_cohort_has_arrived(tmp_path):
    """Two of four, over-selected: the round closes at the second arrival (4 s); client 3 would
    go offline at 5.5 s, after that, and counts as excess then rather than holding the round."""
    driver, _ = make_driver(tmp_path, policy={"kind": "sync", "over_selection": 2.0}, per_round=2,
                            availability={3: "0-5.5"})
    (report,) = run_all(driver)
    rows = by_client(report)
    assert {c: rows[c]["status"] for c in rows} == {0: "applied", 1: "applied", 2: "excess", 3: "excess"}
    assert report.round_row["sim_time"] == pytest.approx(4.0)
