"""Periodic, hybrid and asynchronous policies on hand-computed timelines.

Durations (tests/timeline.py): client c takes 3 + c seconds per task (c = 0..3).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.sim.timeline import make_driver, run_all


def _applied(report) -> dict[int, int]:
    """client -> staleness of the updates applied in this round."""
    return {r["client_id"]: r["staleness"] for r in report.client_rows if r["status"] == "applied"}


def test_periodic_aggregates_whatever_arrived_each_period(tmp_path):
    driver, executor = make_driver(tmp_path, policy={"kind": "periodic", "period_s": 4.5}, rounds=2)
    first, second = run_all(driver)
    assert first.round_row["sim_time"] == pytest.approx(4.5)
    assert _applied(first) == {0: 0, 1: 0}
    # 0 and 1 restart at 4.5 on version 1 (ending 7.5, 8.5); 2 and 3 arrive at 5, 6 from version 0
    assert second.round_row["sim_time"] == pytest.approx(9.0)
    assert _applied(second) == {0: 0, 1: 0, 2: 1, 3: 1}
    assert [(v, c) for v, _, c in executor.submitted] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)]


def test_hybrid_closes_at_k_arrivals_and_applies_late_updates_with_staleness(tmp_path):
    policy = {"kind": "hybrid", "min_updates": 2, "deadline_s": 10.0, "late_updates": "stale"}
    driver, _ = make_driver(tmp_path, policy=policy, rounds=2)
    first, second = run_all(driver)
    assert first.round_row["sim_time"] == pytest.approx(4.0)
    assert _applied(first) == {0: 0, 1: 0}
    # round 2 opens at 4 on clients 0, 1 (ending 7 and 8); 2 and 3 (from round 1) arrive late at 5, 6
    assert second.round_row["sim_time"] == pytest.approx(8.0)
    assert _applied(second) == {0: 0, 1: 0, 2: 1, 3: 1}
    assert second.round_row["mean_staleness"] == pytest.approx(0.5)


def test_hybrid_can_drop_late_updates(tmp_path):
    policy = {"kind": "hybrid", "min_updates": 2, "deadline_s": 10.0, "late_updates": "drop"}
    driver, _ = make_driver(tmp_path, policy=policy, rounds=2)
    _, second = run_all(driver)
    statuses = {r["client_id"]: r["status"] for r in second.client_rows}
    assert statuses == {0: "applied", 1: "applied", 2: "discarded", 3: "discarded"}


def test_hybrid_deadline_closes_a_round_short_of_k(tmp_path):
    policy = {"kind": "hybrid", "min_updates": 3, "deadline_s": 4.5}
    driver, _ = make_driver(tmp_path, policy=policy, rounds=1)
    (report,) = run_all(driver)
    assert report.round_row["sim_time"] == pytest.approx(4.5)
    assert _applied(report) == {0: 0, 1: 0}


def test_fedasync_mixes_each_arrival_into_the_model(tmp_path):
    # constant s, alpha 0.5; every client's new model is its base + 1
    policy = {"kind": "async", "mode": "fedasync", "alpha": 0.5, "staleness": {"kind": "constant"}}
    driver, _ = make_driver(tmp_path, policy=policy, rounds=4)
    x0 = driver.state.params.astype(np.float64).copy()
    reports = run_all(driver)
    # arrivals: c0@3 (from v0), c1@4 (v0), c2@5 (v0), then c3@6 (v0) before c0's second task @6 (v1)
    assert [r.round_row["sim_time"] for r in reports] == pytest.approx([3.0, 4.0, 5.0, 6.0])
    assert [next(iter(_applied(r).items())) for r in reports] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    x = x0
    for _ in range(4):
        x = 0.5 * x + 0.5 * (x0 + 1)  # x_t = (1 - a) x_{t-1} + a x_new, every x_new = x0 + 1
    np.testing.assert_allclose(driver.state.params, x, rtol=1e-6)


def test_fedasync_staleness_discounts_the_mixing_rate(tmp_path):
    policy = {"kind": "async", "mode": "fedasync", "alpha": 1.0, "staleness": {"kind": "polynomial", "a": 1.0}}
    driver, _ = make_driver(tmp_path, policy=policy, rounds=2)
    x0 = driver.state.params.astype(np.float64).copy()
    run_all(driver)
    x1 = x0 + 1.0                     # staleness 0: a_t = 1, the model becomes the client's
    x2 = 0.5 * x1 + 0.5 * (x0 + 1.0)  # staleness 1: a_t = (1 + 1)^-1
    np.testing.assert_allclose(driver.state.params, x2, rtol=1e-6)


def test_fedbuff_with_k_1_is_a_server_step_per_arrival(tmp_path):
    policy = {"kind": "async", "mode": "fedbuff", "buffer_size": 1, "staleness": {"kind": "constant"}}
    driver, _ = make_driver(tmp_path, policy=policy, rounds=3)
    x0 = driver.state.params.copy()
    reports = run_all(driver)
    assert [r.round_row["clients"] for r in reports] == [1, 1, 1]
    np.testing.assert_allclose(driver.state.params, x0 + 3.0, rtol=1e-6)


def test_fedbuff_buffers_k_updates_scaled_by_staleness(tmp_path):
    policy = {"kind": "async", "mode": "fedbuff", "buffer_size": 2}
    driver, _ = make_driver(tmp_path, policy=policy, rounds=2)
    x0 = driver.state.params.astype(np.float64).copy()
    first, second = run_all(driver)
    assert _applied(first) == {0: 0, 1: 0} and first.round_row["sim_time"] == pytest.approx(4.0)
    # then c2@5 (v0, staleness 1) and c3@6 (v0, staleness 1)
    assert _applied(second) == {2: 1, 3: 1}
    w = 1 / np.sqrt(2)  # FedBuff's 1/sqrt(1 + staleness)
    np.testing.assert_allclose(driver.state.params, x0 + 1.0 + w, rtol=1e-6)


def test_event_trigger_sends_only_when_the_local_change_is_large(tmp_path):
    # Each task adds +1 to all 6 parameters: one task changes the model by sqrt(6) = 2.45 < 3
    # (suppressed, keeps training locally, no download), two tasks by 2 sqrt(6) = 4.9 > 3 (sent).
    # Client c computes for c + 1 s: client 0 checks at 2 (quiet) and 3 (sends, arrives at 4);
    # client 1 checked quietly at 3 before that.
    policy = {"kind": "event", "threshold": 3.0, "alpha": 0.5, "staleness": {"kind": "constant"}}
    driver, _ = make_driver(tmp_path, policy=policy, rounds=1)
    x0 = driver.state.params.astype(np.float64).copy()
    (report,) = run_all(driver)
    assert report.round_row["sim_time"] == pytest.approx(4.0)
    assert report.round_row["messages_saved"] == 2
    assert _applied(report) == {0: 0}
    suppressed = sorted((r["client_id"], r["start_time"]) for r in report.client_rows if r["status"] == "suppressed")
    assert suppressed == [(0, 0.0), (1, 0.0)]
    np.testing.assert_allclose(driver.state.params, x0 + 0.5 * 2.0, rtol=1e-6)  # mixed in with rate alpha
