"""Preparation (shared by run and validate) refuses bad user code, packages and partitions up front."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import tomli_w
from torch import nn

from raysim.cli import main
from raysim.inputs import ConfigError
from raysim.scenario.preparation import initial_model, prepare
from raysim.scenario.sections import parse_scenario
from raysim.seeding import Stream, derive_seed
from tests.conftest import tiny_table

CALLS: list[tuple[int, int]] = []


def by_size(client_id, samples):
    CALLS.append((client_id, samples))
    return samples ** 0.5


def returns_zero(client_id, samples):
    return 0


def returns_negative(client_id, samples):
    return -1.0


def returns_text(client_id, samples):
    return "heavy"


def returns_nan(client_id, samples):
    return float("nan")


def raises(client_id, samples):
    raise KeyError(client_id)


NOT_CALLABLE = 3.0


class Weighting:  # a class: calling it would run its constructor
    def __init__(self, client_id, samples):
        raise AssertionError("constructor called")


class Model(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.linear = nn.Linear(60, num_classes)


class Exploding(nn.Module):
    def __init__(self, **options):
        raise RuntimeError("no GPU here")


def test_a_user_weighting_is_called_for_every_client_before_training():
    CALLS.clear()
    prepared = prepare(parse_scenario(tiny_table(server={"weighting": "tests.scenario.test_preparation:by_size"})))
    assert CALLS == [(c, int(n)) for c, n in enumerate(prepared.shards.sizes())]


@pytest.mark.parametrize(("name", "message"), [
    ("returns_zero", "returned 0 for client 0"),
    ("returns_negative", "returned -1.0 for client 0"),
    ("returns_text", "returned 'heavy' for client 0"),
    ("returns_nan", "returned nan for client 0"),
    ("raises", "raised KeyError"),
    ("NOT_CALLABLE", "is a float, not a plain Python function"),
    ("Weighting", "is the class Weighting, not a plain Python function; nothing was called"),
    ("missing", "has no attribute 'missing'"),
])
def test_bad_user_weightings_name_server_weighting(name, message):
    with pytest.raises(ConfigError, match=f"server.weighting 'tests.scenario.test_preparation:{name}'.*{message}"):
        prepare(parse_scenario(tiny_table(server={"weighting": f"tests.scenario.test_preparation:{name}"})))


def _initial(**sections):
    scenario = parse_scenario(tiny_table(**sections))
    return initial_model(scenario, prepare(scenario).model)


def test_a_user_model_class_is_built():
    assert _initial(model={"name": "tests.scenario.test_preparation:Model"}).layout.size == 610


def test_a_model_that_fails_to_build_is_one_line():
    with pytest.raises(ConfigError, match=r"model.name 'tests.scenario.test_preparation:Exploding' could not be built .*"
                                          r"RuntimeError: no GPU here"):
        _initial(model={"name": "tests.scenario.test_preparation:Exploding", "options": {"width": 3}})


@pytest.mark.parametrize("command", ["validate", "run"])
def test_model_os_system_is_refused_before_it_runs(tmp_path, capsys, command):
    marker = tmp_path / "pwned"
    table = tiny_table(model={"name": "os:system", "options": {"command": f"touch {marker}"}})
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(table))
    extra = ["--results", str(tmp_path / "results"), "--quiet"] if command == "run" else []
    assert main([command, str(path), *extra]) == 2
    assert "model.name = 'os:system' is in Python's standard library (os)" \
        in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "results").exists()


def test_weighting_os_system_is_refused_before_it_runs(tmp_path):
    with pytest.raises(ConfigError, match="server.weighting = 'os:system' is in Python's standard library"):
        prepare(parse_scenario(tiny_table(server={"weighting": "os:system"})))


@pytest.mark.parametrize(("privacy", "package"), [
    ({"homomorphic": "ckks"}, "tenseal"), ({"secure_aggregation": "secagg"}, "cryptography"),
    ({"dp": "central"}, "opacus"),
])
def test_a_missing_privacy_extra_says_what_to_install(monkeypatch, privacy, package):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    scenario = parse_scenario(tiny_table(privacy=privacy, server={"weighting": "uniform"}))
    key = next(iter(privacy))
    with pytest.raises(ConfigError, match=rf"privacy.{key} = .* needs the '{package}' package: "
                                          r"pip install 'raysim\[privacy\]'"):
        prepare(scenario)


@pytest.fixture
def fashion_mnist():
    from raysim.data import DatasetNotFoundError, find_idx_dir

    try:
        find_idx_dir("fashion_mnist", None)
    except DatasetNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")


def test_empty_clients_are_refused_naming_the_partition(fashion_mnist):
    scenario = parse_scenario(tiny_table(data={"dataset": "fashion_mnist", "num_clients": 50, "partition":
                                               {"kind": "dirichlet", "beta": 0.01, "min_samples": 0}}))
    with pytest.raises(ConfigError, match=r"data.partition gives \d+ clients no examples"):
        prepare(scenario)


def test_dirichlet_redraws_until_every_client_has_ten_examples(fashion_mnist):
    scenario = parse_scenario(tiny_table(data={"dataset": "fashion_mnist", "num_clients": 50,
                                               "partition": {"kind": "dirichlet", "beta": 0.1}}))
    assert min(prepare(scenario).shards.sizes()) >= 10


def test_the_weighting_sees_the_training_sizes_after_the_holdout():
    CALLS.clear()
    prepared = prepare(parse_scenario(tiny_table(server={"weighting": "tests.scenario.test_preparation:by_size"},
                                                 personal={"holdout": 0.5})))
    assert [n for _, n in CALLS] == [int(n) for n in prepared.shards.sizes()]


@pytest.mark.parametrize("sections, message", [
    ({"resources": {"vectorize": "on"}}, "resources.vectorize = 'on' needs a model without buffers"),
    ({"personal": {"local_layers": ["head."], "holdout": 0.2}}, r"personal.local_layers: local_layers \['head.'\] match"),
])
def test_the_initial_model_is_checked_against_the_scenario_wherever_it_was_built(sections, message):
    """A Ray run has a client actor build the model (``state_of``); the checks are the same."""
    from raysim.models.layout import ParamLayout

    scenario = parse_scenario(tiny_table(**sections))
    layout = ParamLayout(names=("weight", "running_mean"), shapes=((2, 3), (3,)), num_trainable=6)
    seeds = []

    def state_of(model, seed):
        seeds.append(seed)
        return np.zeros(layout.size, np.float32), layout

    with pytest.raises(ConfigError, match=message):
        initial_model(scenario, prepare(scenario).model, state_of)
    assert seeds == [derive_seed(scenario.run.seed, Stream.MODEL_INIT)]
