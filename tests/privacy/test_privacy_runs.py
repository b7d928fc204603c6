"""The privacy stage inside runs: DP with accounting, SecAgg, HE, composition rules, hygiene."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raysim.api import run
from raysim.inputs import ConfigError
from raysim.privacy.accounting import epsilon_after, local_epsilon
from raysim.privacy.dp import dp_average
from raysim.privacy.stage import PrivacyConfig, PrivacyStage, PrivateUpdate
from raysim.seeding import Stream, rng
from tests.sim.timeline import FakeExecutor, by_client, make_driver, run_all

UPDATES = [PrivateUpdate(0, np.array([3.0, 4.0]), 1.0), PrivateUpdate(1, np.array([0.3, 0.4]), 1.0),
           PrivateUpdate(2, np.array([0.0, -2.0]), 1.0)]


def test_central_dp_clips_averages_over_the_expected_cohort_and_accounts():
    stage = PrivacyStage(PrivacyConfig(dp="central", clip_norm=1.0, noise_multiplier=1.1), seed=4, population=100, cohort=4)
    average, metrics = stage.reduce(UPDATES, round_number=1, dropped=[])
    clipped_sum = np.array([0.6, 0.8]) + np.array([0.3, 0.4]) + np.array([0.0, -1.0])
    expected = dp_average(clipped_sum, clip_norm=1.0, noise_multiplier=1.1, denominator=4,
                          rng=rng(4, Stream.PRIVACY, 1))
    np.testing.assert_allclose(average, expected)
    assert metrics["fraction_clipped"] == pytest.approx(2 / 3)
    assert metrics["epsilon"] == pytest.approx(epsilon_after(1, noise_multiplier=1.1, delta=1e-5,
                                                             sampling="fixed_size", population=100, cohort=4))


@pytest.mark.parametrize(("adjacency", "accounted"), [(None, 1.0), ("replace_one", 1.0), ("zero_out", 2.0)])
def test_local_dp_noises_each_update_and_accounts_per_client(adjacency, accounted):
    # local DP defaults to replace-one adjacency: sensitivity 2S, so z = 2 counts as z = 1
    stage = PrivacyStage(PrivacyConfig(dp="local", clip_norm=1.0, noise_multiplier=2.0, adjacency=adjacency),
                         seed=0, population=10, cohort=3)
    for r in (1, 2):
        average, metrics = stage.reduce(UPDATES[:2], round_number=r, dropped=[])
    assert metrics["epsilon"] == pytest.approx(local_epsilon(2, noise_multiplier=accounted, delta=1e-5))
    assert metrics["dp_adjacency"] == (adjacency or "replace_one") and metrics["dp_sampling_rate"] == 1.0
    assert not np.allclose(average, (np.array([0.6, 0.8]) + np.array([0.3, 0.4])) / 2)


def test_secure_sum_equals_the_plain_mean_up_to_quantisation_and_survives_dropouts():
    stage = PrivacyStage(PrivacyConfig(secure_aggregation="secagg", secagg_threshold=0.5, quantization_bits=16),
                         seed=1, population=10, cohort=4)
    updates = [PrivateUpdate(c, np.array([0.1 * c, -0.2, 0.5]), 1.0) for c in range(3)]
    average, metrics = stage.reduce(updates, round_number=1, dropped=[7])
    np.testing.assert_allclose(average, np.mean([u.delta for u in updates], axis=0), atol=2 / 2**16)
    assert metrics["secagg_failed"] == 0 and metrics["secagg_bytes_up_per_client"] > 3 * 4


def test_secure_sum_below_threshold_gives_no_update():
    stage = PrivacyStage(PrivacyConfig(secure_aggregation="secagg", secagg_threshold=0.8), seed=1, population=10, cohort=4)
    average, metrics = stage.reduce(UPDATES[:2], round_number=1, dropped=[5, 6])
    assert average is None and metrics["secagg_failed"] == 1


def test_he_average_matches_the_weighted_mean():
    stage = PrivacyStage(PrivacyConfig(homomorphic="ckks"), seed=0, population=10, cohort=3)
    updates = [PrivateUpdate(c, np.linspace(-1, 1, 50) * c, float(c + 1)) for c in range(3)]
    average, metrics = stage.reduce(updates, round_number=1, dropped=[])
    expected = sum(u.weight * u.delta for u in updates) / 6.0
    np.testing.assert_allclose(average, expected, atol=1e-4)
    assert metrics["he_bytes_per_client"] > 50 * 8


def test_dp_run_reports_epsilon_and_stops_at_the_budget(tiny, tmp_path):
    scenario = tiny(run={"rounds": 20}, server={"weighting": "uniform"},
                    privacy={"dp": "central", "clip_norm": 0.5, "noise_multiplier": 0.8, "epsilon_budget": 6.0})
    outcome = run(scenario, results_root=tmp_path)
    rounds = pd.read_parquet(outcome.run_dir / "rounds.parquet")
    # the run stops before the round that would cross the budget: every applied round is within it
    next_round = epsilon_after(len(rounds) + 1, noise_multiplier=0.8, delta=1e-5, sample_rate=4 / 8)
    assert len(rounds) < 20 and rounds["epsilon"].iloc[-1] <= 6.0 < next_round
    assert rounds["epsilon"].is_monotonic_increasing
    assert (rounds["dp_adjacency"] == "zero_out").all() and (rounds["dp_sampling_rate"] == 0.5).all()
    assert {"clip_norm", "fraction_clipped"} <= set(rounds.columns)


def test_secagg_and_he_runs_track_the_plaintext_run(tiny, tmp_path):
    common = dict(run={"rounds": 4}, server={"weighting": "uniform"})
    plain = run(tiny(**common), results_root=tmp_path).summary["final_accuracy"]
    secagg = run(tiny(privacy={"secure_aggregation": "secagg", "quantization_range": 0.5}, system={"dropout": 0.2},
                      **common), results_root=tmp_path)
    he = run(tiny(privacy={"homomorphic": "ckks"}, **common), results_root=tmp_path).summary["final_accuracy"]
    rounds = pd.read_parquet(secagg.run_dir / "rounds.parquet")
    assert (rounds["secagg_bytes_up_per_client"] > 0).all() and "secagg_wall_s" in rounds
    assert (rounds["protocol_sim_s"] >= 6 * 0.05).all()  # at least three extra round trips of 50 ms latency
    assert abs(he - plain) < 0.02
    assert secagg.summary["final_accuracy"] > 0.3


@pytest.mark.parametrize(
    ("sections", "message"),
    [({"server": {"aggregator": "krum", "weighting": "uniform"}, "privacy": {"secure_aggregation": "secagg"}},
      "needs individual updates"),
     ({"server": {"strategy": "fednova"}, "privacy": {"homomorphic": "ckks"}}, "cannot see under homomorphic"),
     ({"server": {"weighting": "uniform"}, "privacy": {"secure_aggregation": "secagg"},
       "policy": {"kind": "async"}}, "policy.kind = 'sync'"),
     ({"privacy": {"dp": "central"}}, "set server.weighting = 'uniform'"),
     ({"privacy": {"epsilon_budget": 3.0}}, "epsilon_budget needs dp"),
     ({"privacy": {"secure_aggregation": "secagg", "homomorphic": "ckks"}}, "not both")],
)
def test_impossible_privacy_combinations_are_refused(tiny, sections, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**sections)


class NaNForClient2(FakeExecutor):
    def result(self, task_id):
        out = super().result(task_id)
        if out.client_id == 2:
            out.delta[0] = np.nan
        return out


def test_a_malformed_update_is_rejected_and_never_reaches_the_model(tmp_path):
    driver, _ = make_driver(tmp_path, policy={"kind": "sync"})
    driver.executor = NaNForClient2()
    driver.executor.submitted = []
    (report,) = run_all(driver)
    rows = by_client(report)
    assert rows[2]["status"] == "rejected" and rows[2]["rejected_because"] == "contains NaN"
    assert report.round_row["failed_rejected"] == 1 and report.round_row["clients"] == 3
    assert np.isfinite(driver.state.params).all()


def test_secagg_plus_thresholds_count_within_a_neighbourhood():
    stage = PrivacyStage(PrivacyConfig(secure_aggregation="secagg+", secagg_neighbours=4), seed=2, population=40, cohort=20)
    updates = [PrivateUpdate(c, np.full(5, 0.01 * c), 1.0) for c in range(18)]
    average, metrics = stage.reduce(updates, round_number=1, dropped=[30, 31])
    np.testing.assert_allclose(average, np.mean([u.delta for u in updates], axis=0), atol=2 / 2**16)
    assert metrics["secagg_failed"] == 0


def test_adaptive_clipping_moves_the_clip_norm_towards_the_update_norms():
    stage = PrivacyStage(PrivacyConfig(dp="central", clip_norm=0.1, noise_multiplier=1.0, adaptive_clipping=True),
                         seed=0, population=1000, cohort=40)
    updates = [PrivateUpdate(c, np.full(4, 1.0 + 0.01 * c), 1.0) for c in range(40)]  # norms about 2
    norms = []
    for r in range(1, 21):
        _, metrics = stage.reduce(updates, round_number=r, dropped=[])
        norms.append(metrics["clip_norm"])
    assert norms[0] == pytest.approx(0.1) and norms[-1] > 0.2  # grows while everything is clipped
    assert all(b >= a * 0.95 for a, b in zip(norms, norms[1:]))
