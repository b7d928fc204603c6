"""Scenario loading: every bad value is refused with its key named."""

from __future__ import annotations

import pytest

from raysim.data import DirichletClasses
from raysim.inputs import ConfigError
from raysim.scenario.sections import load_scenario, parse_scenario
from raysim.sim.policies import SyncPolicy
from tests.conftest import tiny_table


def test_defaults_fill_unspecified_sections():
    scenario = parse_scenario(tiny_table())
    assert scenario.server.strategy == "fedavg"
    assert isinstance(scenario.policy, SyncPolicy)
    assert scenario.clients_per_round == 4


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"run": {"rounds": 0}}, "run: rounds must be >= 1"),
        ({"run": {"roundz": 3}}, "unknown key 'run.roundz'"),
        ({"run": {"seed": "one"}}, "run.seed must be an integer"),
        ({"run": {"executor": "spark"}}, "run.executor = 'spark' is not allowed; choose one of ['ray', 'local']"),
        ({"data": {"dataset": "imagenet"}}, "dataset = 'imagenet' is unknown"),
        ({"data": {"partition": {"kind": "dirichlet", "beta": -1.0}}}, "data.partition"),
        ({"data": {"partition": {"kind": "zipf"}}}, "data.partition.kind = 'zipf' is unknown"),
        ({"selection": {"clients_per_round": 9}}, "exceeds data.num_clients = 8"),
        ({"selection": {"fraction": 0.5}}, "set exactly one of clients_per_round"),
        ({"client": {"lr": 0.0}}, "client: lr must be > 0"),
        ({"server": {"strategy": "fedsgd"}}, "set client.epochs = 1 and client.batch_size = 0"),
        ({"resources": {"clients_per_actor": "many"}}, "resources.clients_per_actor"),
        ({"policy": {"kind": "sync", "deadline_s": -1.0}}, "deadline_s must be >= 0"),
        ({"system": {"dropout": 1.5}}, "dropout must be in [0, 1)"),
    ],
)
def test_invalid_values_name_the_key(sections, message):
    with pytest.raises(ConfigError) as err:
        parse_scenario(tiny_table(**sections))
    assert message in str(err.value)


def test_synthetic_data_needs_the_natural_partition():
    with pytest.raises(ConfigError, match="set data.partition = 'natural'"):
        parse_scenario(tiny_table(data={"partition": "iid"}))


def test_missing_section_is_named():
    table = tiny_table()
    del table["data"]
    with pytest.raises(ConfigError, match=r"missing section \[data\]"):
        parse_scenario(table)


def test_overrides_parse_toml_values_and_reach_nested_tables():
    table = tiny_table(data={"dataset": "fashion_mnist", "partition": "iid", "num_clients": 20})
    scenario = parse_scenario(table, ("run.rounds=7", "data.partition.kind=dirichlet", "data.partition.beta=0.3"))
    assert scenario.run.rounds == 7
    assert scenario.data.partition == DirichletClasses(beta=0.3)


def test_override_of_unknown_key_is_refused():
    with pytest.raises(ConfigError, match="unknown key 'client.learning_rate'"):
        parse_scenario(tiny_table(), ("client.learning_rate=0.1",))


def test_resolved_scenario_round_trips_through_toml(tmp_path):
    scenario = parse_scenario(tiny_table(policy={"kind": "sync", "deadline_s": 5.0}))
    path = tmp_path / "resolved.toml"
    path.write_text(scenario.to_toml())
    assert load_scenario(path) == scenario


def test_shipped_scenarios_are_valid():
    from pathlib import Path

    from raysim.scenario.vertical import load_any

    files = sorted(Path(__file__).parents[2].joinpath("scenarios").rglob("*.toml"))
    assert files
    for path in files:
        load_any(path)  # a scenario, or a vertical one (scenarios/vertical/)


def test_unreadable_toml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[run\nname = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario(path)


def test_a_bad_trace_is_refused_at_load(tmp_path):
    trace = tmp_path / "devices.csv"
    trace.write_text("client_id,seconds_per_sample,downlink_mbps,uplink_mbps,latency_s\n0,1,1,1,0\n")
    with pytest.raises(ConfigError, match="no row for clients"):
        parse_scenario(tiny_table(system={"trace": str(trace)}))


@pytest.mark.parametrize(
    ("server", "message"),
    [({"strategy": "fednova", "aggregator": "krum"}, "needs aggregator = 'mean'"),
     ({"optimizer": "lion"}, "optimizer = 'lion' is unknown"),
     ({"aggregator": "mode"}, "aggregator = 'mode' is unknown"),
     ({"optimizer": "adam", "beta2": 1.5}, "beta2"),
     ({"weighting": "by_size"}, "weighting = 'by_size'")],
)
def test_server_section_combinations_are_checked(server, message):
    with pytest.raises(ConfigError, match=message):
        parse_scenario(tiny_table(server=server))


@pytest.mark.parametrize(("fraction", "population", "cohort"),
                         [(0.29, 100, 29), (0.57, 100, 57), (0.1, 30, 3), (0.01, 50, 1), (1.0, 7, 7), (0.5, 5, 2)])
def test_fraction_cohort_is_not_lost_to_float_rounding(fraction, population, cohort):
    from raysim.scenario.sections import SelectionConfig

    assert SelectionConfig(fraction=fraction).cohort(population) == cohort


@pytest.mark.parametrize("key", ["system.seconds_per_sample", "system.uplink_mbps", "system.latency_s",
                                 "resources.num_cpus", "data.synthetic.alpha", "data.synthetic.beta",
                                 "client.lr", "policy.over_selection", "run.sim_time_limit"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300"])
def test_non_finite_and_huge_floats_are_refused_with_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"{key} = .* must be a finite number"):
        parse_scenario(tiny_table(policy={"kind": "sync"}), (f"{key}={value}",))


def test_period_s_is_checked_for_finiteness():
    with pytest.raises(ConfigError, match="policy.period_s = nan"):
        parse_scenario(tiny_table(policy={"kind": "periodic", "period_s": float("nan")}))


@pytest.mark.parametrize(("sections", "message"), [
    ({"resources": {"num_cpus": 1e6}}, "num_cpus must be in"),
    ({"resources": {"num_cpus": 1e-9}}, r"num_cpus must be in \[0.01, 1024\]"),
    ({"resources": {"num_gpus": 1e-9}}, "num_gpus must be 0 or >= 0.01"),
    ({"resources": {"num_gpus": -1.0}}, "num_gpus must be 0 or >= 0.01"),
    ({"data": {"num_clients": 10**7}, "selection": {"clients_per_round": 4}}, "GB of memory"),
])
def test_huge_values_that_break_the_run_are_refused(sections, message):
    with pytest.raises(ConfigError, match=message):
        parse_scenario(tiny_table(**sections))


def test_a_scenario_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[run]\nname = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.toml' is not UTF-8 text .* save it as UTF-8"):
        load_scenario(path)


@pytest.mark.parametrize(("sections", "message"), [
    ({"system": {"trace": "x" * 300}}, "system: trace = 'x+' cannot be a path .*File name too long"),
    ({"data": {"root": "y" * 300}}, "data: root = 'y+' cannot be a path"),
    ({"policy": {"kind": []}}, r"policy.kind = \[\] is unknown"),
])
def test_values_that_cannot_be_paths_or_names_are_refused(sections, message):
    with pytest.raises(ConfigError, match=message):
        parse_scenario(tiny_table(**sections))
