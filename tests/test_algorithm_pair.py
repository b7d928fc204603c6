"""One ``[algorithm]`` object for both halves (issue 34, item 7): ``kind`` names a class with
``client(self)`` and ``server(self)``, built once from ``options``; it runs exactly as the two
keys naming the halves, is refused beside them or without a half (exit 2 at validate, the key
named), its client half travels to the workers as a name and options, and an object handed to
``raysim.api.run`` is recorded as the ``[algorithm]`` that builds it again."""

from __future__ import annotations

import pandas as pd
import pytest

from raysim.algorithms.pair import ClientHalf
from raysim.api import run
from raysim.cli import main
from raysim.inputs import ConfigError
from raysim.models.algorithm import build_algorithm
from raysim.scenario.composition import UserObjects, make_strategy
from raysim.scenario.preparation import initial_model, prepare
from raysim.scenario.sections import load_scenario
from tests.conftest import tiny_table
from tests.user_code import CountingPair, CountingSGD, MeanOfDeltas

USER = "tests.user_code"
PAIR = {"algorithm": {"kind": f"{USER}:CountingPair", "options": {"scale": 0.5}}}
TWO_KEYS = {"client": {"algorithm": f"{USER}:CountingSGD", "algorithm_options": {"lr_scale": 0.5}},
            "server": {"strategy": f"{USER}:MeanOfDeltas", "strategy_options": {"server_lr": 0.5}}}


def _write(tmp_path, **sections) -> str:
    import tomli_w

    path = tmp_path / "scenario.toml"
    path.write_text(tomli_w.dumps(tiny_table(**sections)))
    return str(path)


@pytest.mark.parametrize("sections, message", [
    ({**PAIR, "client": {"algorithm": f"{USER}:CountingSGD"}},
     "algorithm.kind = 'tests.user_code:CountingPair' provides both the client and the server half, and "
     "client.algorithm = 'tests.user_code:CountingSGD' names another: remove client.algorithm"),
    ({**PAIR, "server": {"strategy": f"{USER}:MeanOfDeltas"}},
     "server.strategy = 'tests.user_code:MeanOfDeltas' names another: remove server.strategy"),
    ({**PAIR, "server": {"strategy": "scaffold"}}, "server.strategy = 'scaffold' names another"),
    ({"algorithm": {"kind": f"{USER}:ClientOnlyPair"}},
     "algorithm.kind 'tests.user_code:ClientOnlyPair' has no method server(self)"),
    ({"algorithm": {"kind": f"{USER}:CountingSGD"}}, "algorithm.kind 'tests.user_code:CountingSGD' has no method "
                                                      "client(self)"),
    ({"algorithm": {"kind": f"{USER}:PairWithABadServer"}},
     "algorithm.kind 'tests.user_code:PairWithABadServer': its server() 'NoAggregate' has no method aggregate"),
    ({"algorithm": {"kind": f"{USER}:CountingPair", "options": {"alpha": 1}}},
     "(built with algorithm.options) takes (scale): it has no parameter ['alpha']"),
    ({"algorithm": {"kind": "CountingPair"}}, "algorithm: kind = 'CountingPair': name a class of yours"),
    ({"algorithm": {"options": {"scale": 1}}}, "algorithm: options are for the object algorithm.kind names"),
    ({**PAIR, "privacy": {"dp": "central"}}, "algorithm.kind = 'tests.user_code:CountingPair' is a user strategy, "
                                              "which the [privacy] options cannot run"),
])
def test_an_algorithm_that_does_not_fit_is_refused_at_validate_with_exit_2(tmp_path, capsys, sections, message):
    assert main(["validate", _write(tmp_path, **sections)]) == 2
    assert message in capsys.readouterr().err


def test_the_client_half_travels_as_a_name_and_is_built_where_the_worker_is(tiny):
    scenario = tiny(**PAIR)
    prepared = prepare(scenario)
    assert prepared.plan.algorithm == ClientHalf(f"{USER}:CountingPair", {"scale": 0.5})
    assert prepared.plan.algorithm_options == {}
    client = build_algorithm(prepared.plan.algorithm, prepared.plan.algorithm_options)
    assert isinstance(client, CountingSGD) and client.lr_scale == 0.5
    initial_model(scenario, prepared.model, plan=prepared.plan)  # what validate builds
    server = make_strategy(scenario)
    assert isinstance(server, MeanOfDeltas) and server.server_lr == 0.5
    assert "[algorithm]" not in tiny().to_toml()  # a scenario without it is written (and hashed) as before


def _tables(run_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rounds and clients tables without their wall-clock columns."""
    return tuple(frame.drop(columns=[c for c in frame.columns if "wall" in c])
                 for frame in (pd.read_parquet(run_dir / f"{name}.parquet") for name in ("rounds", "clients")))


def test_one_object_runs_as_the_two_keys_do(tiny, tmp_path):
    one = run(tiny(**PAIR), results_root=tmp_path / "one").run_dir
    two = run(tiny(**TWO_KEYS), results_root=tmp_path / "two").run_dir
    (rounds, clients), (rounds_2, clients_2) = _tables(one), _tables(two)
    pd.testing.assert_frame_equal(rounds, rounds_2)
    pd.testing.assert_frame_equal(clients, clients_2)
    assert rounds.mean_norm.gt(0).all() and clients.metric_seen.notna().any()


def test_an_object_handed_to_run_is_recorded_as_the_algorithm_that_builds_it(tiny, tmp_path):
    handed = run(tiny(), results_root=tmp_path / "handed", algorithm=CountingPair(scale=0.5)).run_dir
    recorded = load_scenario(handed / "scenario.toml")
    assert recorded.algorithm.kind == f"{USER}:CountingPair" and recorded.algorithm.options == {"scale": 0.5}
    again = run(recorded, results_root=tmp_path / "again").run_dir
    for mine, theirs in zip(_tables(handed), _tables(again)):
        pd.testing.assert_frame_equal(mine, theirs)
    with pytest.raises(ConfigError, match="raysim.api.run: algorithm.kind .* remove client.algorithm"):
        UserObjects(client_algorithm=CountingSGD(), algorithm=CountingPair()).named(tiny())
