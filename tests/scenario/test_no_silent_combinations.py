"""'No silent combinations': every accepted scenario runs the algorithm its keys name.

One test (or a few) per finding of the review: the loader refuses what would silently run
another algorithm or crash mid-run, and what it accepts is checked against the math.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysim.algorithms.robust import coordinate_median, krum
from raysim.algorithms.server_opt import make_server_optimizer
from raysim.algorithms.strategy import Strategy, Update
from raysim.inputs import ConfigError
from raysim.privacy.accounting import epsilon_after
from raysim.privacy.he import ciphertext_bytes
from raysim.privacy.stage import PrivacyConfig, PrivacyStage, PrivateUpdate
from raysim.scenario.composition import client_sgd
from raysim.scenario.sections import parse_scenario
from raysim.sim.kernel.server_step import RunDiverged
from tests.conftest import tiny_table
from tests.sim.timeline import FakeExecutor, by_client, make_driver, run_all
from tests.conftest import server_start as _start, server_step_of as _step

UNIFORM = {"weighting": "uniform"}


def refused(message: str, **sections: dict) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scenario(tiny_table(**sections))


# 1, 2: DP runs DP-FedAvg only; SCAFFOLD's control variates need the plain mean ----------------

@pytest.mark.parametrize("dp", ["central", "local"])
@pytest.mark.parametrize("server", [{"aggregator": "median"}, {"aggregator": "trimmed_mean"}, {"aggregator": "krum"},
                                    {"aggregator": "multi_krum"}, {"strategy": "fednova"}, {"strategy": "scaffold"}])
def test_dp_refuses_every_reducer_but_the_mean(dp, server):
    refused(r"privacy.dp = .* server.aggregator = .* server.strategy", server={**UNIFORM, **server},
            privacy={"dp": dp})


@pytest.mark.parametrize("aggregator", ["median", "trimmed_mean", "krum", "multi_krum"])
def test_scaffold_refuses_robust_aggregators(aggregator):
    refused(r"server.strategy = 'scaffold'.*server.aggregator = 'mean'", server={"strategy": "scaffold",
                                                                                  "aggregator": aggregator})


# 3: robust rules see the policy's scales; FedAsync (one update at a time) is refused -----------

def _updates(scales):
    rows = np.array([[1.0, -2.0], [3.0, 0.5], [-1.0, 4.0], [2.0, 2.0], [0.0, 1.0]])
    return rows, [Update(client_id=i, num_samples=10 * (i + 1), steps=1, delta=r, scale=s)
                  for i, (r, s) in enumerate(zip(rows, scales))]


@pytest.mark.parametrize(("reducer", "params", "rule"), [
    ("median", {}, coordinate_median),
    ("krum", {"num_byzantine": 1}, lambda rows: krum(rows, 1)),
])
def test_robust_rules_apply_to_the_staleness_scaled_rows(reducer, params, rule):
    scales = [1.0, 0.5, 0.25, 1 / math.sqrt(2), 1.0]
    rows, updates = _updates(scales)
    strategy = Strategy(make_server_optimizer("sgd", lr=1.0), reducer=reducer, reducer_params=params)
    np.testing.assert_allclose(strategy.reduce(updates), rule(rows * np.array(scales)[:, None]))


def test_a_step_with_fewer_rows_than_krum_needs_is_skipped_and_counted():
    _, updates = _updates([1.0] * 5)
    strategy = Strategy(make_server_optimizer("sgd", lr=1.0), reducer="krum", reducer_params={"num_byzantine": 2})
    state = _start(strategy, np.zeros(2))
    after, metrics = _step(strategy, state, updates[:4])
    assert metrics["robust_skipped"] == 1.0 and np.array_equal(after.params, state.params)


@pytest.mark.parametrize("policy", [{"kind": "async", "mode": "fedasync"}, {"kind": "event", "threshold": 1.0}])
@pytest.mark.parametrize("aggregator", ["median", "krum"])
def test_mixing_policies_refuse_robust_aggregators(policy, aggregator):
    refused(r"server.aggregator = .* applies each update on its own", server={"aggregator": aggregator},
            policy=policy)


def test_robust_rules_need_enough_updates_per_step():
    refused(r"needs at least 4 updates per server step.*at most 3", server={"aggregator": "krum"},
            policy={"kind": "async", "mode": "fedbuff", "buffer_size": 3})
    refused(r"needs at least 5", server={"aggregator": "trimmed_mean", "trim": 2})  # cohort of 4


# 4, 5, 6: what epsilon means and when the run stops ---------------------------------------------

def test_dp_accounts_the_over_selected_sampling_rate(tmp_path):
    driver, _ = make_driver(tmp_path, policy={"kind": "sync", "over_selection": 1.5}, per_round=2,
                            server=UNIFORM, privacy={"dp": "central", "noise_multiplier": 1.0})
    (report,) = run_all(driver)
    q = math.ceil(2 * 1.5) / 4
    assert report.round_row["dp_sampling_rate"] == q
    assert report.round_row["epsilon"] == pytest.approx(
        epsilon_after(1, noise_multiplier=1.0, delta=1e-5, sample_rate=q))


def test_dp_refuses_populations_where_not_every_client_can_be_drawn(tmp_path):
    refused(r"system.availability = 'intermittent'", server=UNIFORM, privacy={"dp": "central"},
            system={"availability": "intermittent"})
    trace = tmp_path / "trace.csv"
    trace.write_text("client_id,seconds_per_sample,downlink_mbps,uplink_mbps,latency_s,availability\n"
                     + "".join(f"{c},0.01,1,1,0,0-100\n" for c in range(8)))
    refused(r"system.trace = .* availability", server=UNIFORM, privacy={"dp": "central"}, system={"trace": str(trace)})


def test_replace_one_adjacency_halves_the_accounted_noise():
    updates = [PrivateUpdate(c, np.ones(3), 1.0) for c in range(4)]
    for adjacency, accounted in (("zero_out", 1.2), ("replace_one", 0.6)):
        stage = PrivacyStage(PrivacyConfig(dp="central", noise_multiplier=1.2, adjacency=adjacency),
                             seed=0, population=40, cohort=4)
        _, metrics = stage.reduce(updates, round_number=1, dropped=[])
        assert metrics["dp_adjacency"] == adjacency
        assert metrics["epsilon"] == pytest.approx(epsilon_after(1, noise_multiplier=accounted, delta=1e-5,
                                                                 sample_rate=0.1))


def test_privacy_keys_that_would_be_ignored_are_refused():
    refused(r"adaptive_clipping needs dp = 'central', not 'local'", server=UNIFORM,
            privacy={"dp": "local", "adaptive_clipping": True})
    refused(r"adjacency .* needs dp", privacy={"adjacency": "replace_one"})
    refused(r"adaptive_clipping needs dp = 'central', not 'none'", privacy={"adaptive_clipping": True})
    refused(r"secagg_neighbours .* needs secure_aggregation = 'secagg\+'", server=UNIFORM,
            privacy={"secure_aggregation": "secagg", "secagg_neighbours": 4})


def test_the_budget_stops_before_the_round_that_would_cross_it():
    stage = PrivacyStage(PrivacyConfig(dp="central", noise_multiplier=1.0, epsilon_budget=2.0),
                         seed=0, population=10, cohort=5)
    updates = [PrivateUpdate(c, np.ones(2), 1.0) for c in range(5)]
    rounds = 0
    while not stage.would_exceed_budget([u.client_id for u in updates]):
        stage.reduce(updates, round_number=rounds + 1, dropped=[])
        rounds += 1
    assert stage.epsilon <= 2.0 < epsilon_after(rounds + 1, noise_multiplier=1.0, delta=1e-5, sample_rate=0.5)


# 8: FedAsync is a plain step ----------------------------------------------------------------------

@pytest.mark.parametrize("server", [{"optimizer": "adam", "lr": 0.01}, {"optimizer": "sgd", "lr": 0.5},
                                    {"optimizer": "momentum"}])
def test_fedasync_refuses_a_server_optimizer(server):
    refused(r"set server.optimizer = 'sgd' and server.lr = 1", server=server,
            policy={"kind": "async", "mode": "fedasync"})


# 9: protocol costs on the simulated clock -------------------------------------------------------

def test_secagg_and_ckks_move_the_round_end(tmp_path):
    # four clients, links of 192 bit/s, no latency: a plain round ends at 6 s (timeline.py)
    plain, _ = make_driver(tmp_path, policy={"kind": "sync"}, rounds=2, server=UNIFORM)
    secagg, _ = make_driver(tmp_path, policy={"kind": "sync"}, rounds=2, server=UNIFORM,
                            privacy={"secure_aggregation": "secagg"})
    ckks, _ = make_driver(tmp_path, policy={"kind": "sync"}, rounds=2, privacy={"homomorphic": "ckks"})
    times = {}
    for name, driver in (("plain", plain), ("secagg", secagg), ("ckks", ckks)):
        reports = run_all(driver)
        times[name] = [r.round_row["sim_time"] for r in reports]
        extra = reports[0].round_row.get("protocol_sim_s", 0.0)
        upload = by_client(reports[0])[0]["upload_s"]
        # round 2 starts when round 1's protocol ends: the same timeline, shifted
        starts = {row["start_time"] for row in reports[1].client_rows}
        assert starts == {times[name][0]}
        assert times[name][1] == pytest.approx(2 * times[name][0])
        if name == "ckks":
            assert upload == pytest.approx(8 * ciphertext_bytes(6) / 192)
            assert extra > upload  # the encrypted sum goes down to the key holder
        if name == "secagg":
            assert upload == pytest.approx(8 * 24 / 192) and extra > 0  # 6 coordinates x 32 bits
        assert times[name][0] == pytest.approx(max(r["end_time"] for r in reports[0].client_rows) + extra)
    assert times["plain"][0] == 6.0 < times["secagg"][0] < times["ckks"][0]


# 10: accepted at load, crashed mid-run ------------------------------------------------------------

def test_fednova_refuses_settings_without_a_closed_form():
    refused(r"client.momentum or client.proximal_mu, not both", server={"strategy": "fednova"},
            client={"momentum": 0.9, "proximal_mu": 0.1})
    refused(r"client.lr \* client.proximal_mu < 1", server={"strategy": "fednova"},
            client={"lr": 0.5, "proximal_mu": 2.0})


def test_secagg_refuses_bits_that_overflow_the_ring():
    table = tiny_table(server=UNIFORM, privacy={"secure_aggregation": "secagg", "quantization_bits": 24},
                       selection={"clients_per_round": 300})
    table["data"] = {"dataset": "fashion_mnist", "num_clients": 1000}
    with pytest.raises(ConfigError, match=r"privacy.quantization_bits = 24 .* 300 clients.*<= 23"):
        parse_scenario(table)
    table["privacy"]["quantization_bits"] = 23
    parse_scenario(table)


# 11: a model that overflows ends the run ------------------------------------------------------------

class Overflowing(FakeExecutor):
    def result(self, task_id):
        out = super().result(task_id)
        return type(out)(**{**out.__dict__, "delta": np.full(out.delta.shape, 1e300)})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow itself
def test_a_non_finite_model_ends_the_run_naming_the_round(tmp_path):
    driver, _ = make_driver(tmp_path, policy={"kind": "sync"})
    driver.executor = Overflowing()
    driver.executor.submitted = []
    with pytest.raises(RunDiverged, match="round 1: the new global model has 6 non-finite values"):
        run_all(driver)


def test_the_divergence_error_crosses_process_boundaries_intact():
    """It is raised in the driver actor and must reach the CLI as itself (exit 1, one line)."""
    import pickle

    error = pickle.loads(pickle.dumps(RunDiverged(4, 2, 7)))
    assert isinstance(error, RunDiverged) and error.round_number == 4
    assert str(error).startswith("round 4: the new global model has 2 non-finite values (first at index 7)")


# 7: SCAFFOLD's server control is the population-weighted mean of the client controls ------------

def test_fedsgd_keeps_the_clients_weight_decay_in_its_gradient():
    scenario = parse_scenario(tiny_table(server={"strategy": "fedsgd"},
                                         client={"epochs": 1, "batch_size": 0, "weight_decay": 0.1}))
    assert client_sgd(scenario).lr == 1.0 and client_sgd(scenario).weight_decay == 0.1


def test_an_event_trigger_that_never_fires_stops_the_run_instead_of_hanging(tiny, tmp_path):
    from raysim.api import run
    from raysim.sim.kernel.dispatch import RunStalled

    scenario = tiny(policy={"kind": "event", "threshold": 1e11}, server={"optimizer": "sgd", "lr": 1.0})
    with pytest.raises(RunStalled, match="policy.threshold"):
        run(scenario, results_root=tmp_path)
    assert not list(tmp_path.rglob("summary.json"))
