"""[contribution] and [incentive] in runs: refused input, the round's own aggregation, every
method on a synchronous and on asynchronous runs, planted free-riders, incentives that change
who takes part, checkpoints, and the Ray executor giving the local one's values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raysim.algorithms.server_opt import make_server_optimizer
from raysim.algorithms.strategy import Strategy, Update
from raysim.api import run
from raysim.cli import main
from raysim.inputs import ConfigError
from raysim.models.learning_task import Classification
from raysim.results import load
from raysim.results.checkpoints import read_checkpoint
from raysim.sim.stages.contribution import RoundGame
from raysim.sim.kernel.evaluation import EvalCounts
from tests.conftest import server_start as _start, server_step_of as _step

ALL = ["loo", "exact", "tmc", "gtg", "fedsv"]


@pytest.mark.parametrize("sections, message", [
    ({"contribution": {"methods": ["shapley"]}}, "contribution: methods: 'shapley' is unknown"),
    ({"contribution": {"methods": ["gtg"], "max_evaluations": 0}}, "max_evaluations must be >= 1"),
    ({"contribution": {"methods": ["gtg"], "validation_share": 1.0}}, "validation_share must be in (0, 1)"),
    ({"contribution": {"methods": ["gtg"], "validation_share": 0.0}}, "validation_share must be in (0, 1)"),
    ({"contribution": {"methods": ["exact"]}, "data": {"num_clients": 20}, "selection": {"clients_per_round": 13}},
     "(at most 12 allowed): use 'gtg' or 'tmc'"),
    ({"contribution": {"methods": ["exact"], "max_evaluations": 8}}, "raise it to 16"),
    ({"incentive": {"scheme": "proportional"}}, "add a [contribution] section"),
    ({"contribution": {"methods": ["gtg"]}, "incentive": {"scheme": "equal", "method": "loo"}},
     "incentive.method = 'loo' is not computed"),
    ({"contribution": {"methods": ["gtg"]}, "incentive": {"scheme": "equal", "budget": 0.0}}, "budget must be > 0"),
    ({"contribution": {"methods": ["gtg"], "plant": {"label_noise": [0.0] * 9}}}, "contribution.plant names client 8"),
    ({"contribution": {"methods": ["gtg"]}, "privacy": {"dp": "central"},
      "server": {"weighting": "uniform"}}, "remove one of the two sections"),
])
def test_bad_input_is_refused_at_load_naming_the_key(tiny, sections, message):
    with pytest.raises(ConfigError) as refused:
        tiny(**sections)
    assert message in str(refused.value)


def test_the_cli_refuses_with_exit_status_2(tmp_path, capsys):
    scenario = tmp_path / "bad.toml"
    scenario.write_text('[run]\nname = "bad"\n[data]\ndataset = "synthetic"\nnum_clients = 8\npartition = "natural"\n'
                        '[contribution]\nmethods = ["gtg"]\nmax_evaluations = 0\n')
    assert main(["validate", str(scenario)]) == 2
    assert "contribution: max_evaluations must be >= 1" in capsys.readouterr().err


class Recorder:
    """An executor that scores nothing but keeps the models it was asked about."""

    def __init__(self):
        self.models = []

    def evaluate_models(self, models, slices):
        self.models += [np.array(m) for m in models]
        return [[EvalCounts(count=1, sums={"correct": 0, "loss": float(np.sum(m)), "count": 1})] for m in models]


@pytest.mark.parametrize("strategy", [
    Strategy(server_optimizer=make_server_optimizer("adam", lr=0.1, momentum=0.9, beta1=0.9, beta2=0.99, tau=1e-3)),
    Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0, momentum=0.0, beta1=0.9, beta2=0.99, tau=1e-3),
             reducer="median"),
    Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0, momentum=0.0, beta1=0.9, beta2=0.99, tau=1e-3),
             weighting="uniform"),
])
def test_coalition_models_are_the_rounds_own_aggregation(strategy):
    draw = np.random.default_rng(0)
    start = _start(strategy, draw.normal(size=5))
    start, _ = _step(strategy, start, [Update(9, 10, 1, draw.normal(size=5))])  # an optimizer with state
    updates = [Update(c, n, 1, draw.normal(size=5), scale=s) for c, n, s in [(7, 10, 1.0), (2, 30, 0.5), (4, 20, 1.0)]]
    recorder = Recorder()
    game = RoundGame(strategy, start, updates, executor=recorder, slices=[], metric="loss", task=Classification())
    assert game.players == [2, 4, 7]
    values = game.evaluate([(2, 4, 7), (), (2, 7), (2, 4, 7)])
    assert len(recorder.models) == 3  # the repeated coalition is scored once
    np.testing.assert_array_equal(recorder.models[0], _step(strategy, start, updates)[0].params)
    np.testing.assert_array_equal(recorder.models[1], start.params)
    np.testing.assert_array_equal(recorder.models[2], _step(strategy, start, [updates[0], updates[1]])[0].params)
    assert values[0] == values[3] == -float(np.sum(recorder.models[0]))


def valued(tiny, tmp_path, **sections):
    outcome = run(tiny(**sections), results_root=tmp_path)
    results = load(outcome.run_dir)
    return outcome, results.contributions, results.clients


def test_every_method_values_each_rounds_applied_clients(tiny, tmp_path):
    outcome, contributions, clients = valued(
        tiny, tmp_path, run={"rounds": 3}, system={"dropout": 0.3},
        contribution={"methods": ALL, "max_permutations": 200, "tolerance": 0.0, "truncation": 0.0})
    applied = clients[clients.status == "applied"].groupby("round")["client_id"].apply(set)
    for (round_number, method), rows in contributions.groupby(["round", "method"]):
        present = rows[rows.stopped != "absent"]
        assert set(present.client_id) == applied[round_number], (round_number, method)
        if method == "fedsv":
            assert set(rows.client_id) == set(range(8)) and (rows[rows.stopped == "absent"].value == 0).all()
    exact = contributions[contributions.method == "exact"].set_index(["round", "client_id"]).value
    fedsv = contributions[(contributions.method == "fedsv") & (contributions.stopped != "absent")]
    assert np.allclose(fedsv.set_index(["round", "client_id"]).value.loc[exact.index], exact)
    for method in ("tmc", "gtg"):  # untruncated and 200 orders: close to exact, and as efficient
        estimate = contributions[contributions.method == method].set_index(["round", "client_id"]).value.loc[exact.index]
        assert np.abs(estimate - exact).max() < 0.02
        assert np.allclose(estimate.groupby("round").sum(), exact.groupby("round").sum())
    ordered = contributions.sort_values("round")
    assert np.allclose(ordered.groupby(["method", "client_id"]).value.cumsum(), ordered.cumulative)
    summary = pd.read_parquet(outcome.run_dir / "contribution_summary.parquet")
    assert set(summary.method) == set(ALL) and (outcome.run_dir / "contributions.png").exists()
    read_checkpoint(outcome.run_dir, scenario_toml=(outcome.run_dir / "scenario.toml").read_text())


@pytest.mark.parametrize("policy, per_step", [
    ({"kind": "async", "mode": "fedbuff", "buffer_size": 3, "concurrency": 5}, 3),
    ({"kind": "async", "mode": "fedasync", "concurrency": 3}, 1),
])
def test_asynchronous_steps_value_the_updates_each_step_applied(tiny, tmp_path, policy, per_step):
    _, contributions, clients = valued(
        tiny, tmp_path, run={"rounds": 5}, policy=policy, system={"speed_distribution": "lognormal"},
        contribution={"methods": ["exact", "gtg"]})
    applied = clients[clients.status == "applied"]
    assert (applied.staleness > 0).any()  # stale updates were applied, and valued
    for round_number, rows in contributions[contributions.method == "exact"].groupby("round"):
        assert sorted(rows.client_id) == sorted(applied[applied["round"] == round_number].client_id)
        assert len(rows) == per_step


def test_planted_free_riders_rank_last(tiny, tmp_path):
    # IID devices: with non-IID ones an honest client's data can truly lower the validation
    # utility, and then rank below a free-rider under every method, exact Shapley included
    outcome, contributions, clients = valued(
        tiny, tmp_path, run={"rounds": 6}, data={"num_clients": 6, "synthetic": {"iid": True}},
        selection={"clients_per_round": 6},
        server={"weighting": "uniform"}, attack={"kind": "free_rider", "fraction": 0.34, "std": 0.0},
        contribution={"methods": ["exact", "gtg"]})
    riders = set(clients[clients.attacker].client_id)
    assert len(riders) == 2
    summary = pd.read_parquet(outcome.run_dir / "contribution_summary.parquet")
    for method, ranked in summary.groupby("method"):
        assert set(ranked.sort_values("rank").client_id.iloc[-2:]) == riders, method


def participation(tiny, tmp_path, scheme):
    """Free-riders (2 of 8) under a price that the even share covers: who keeps coming?"""
    outcome = run(tiny(run={"rounds": 8}, attack={"kind": "free_rider", "fraction": 0.25, "std": 0.0},
                       contribution={"methods": ["loo"]},
                       incentive={"scheme": scheme, "budget": 1.0, "price_per_compute_s": 0.5}),
                  results_root=tmp_path)
    results = load(outcome.run_dir)
    riders = set(results.clients[results.clients.attacker].client_id)
    late = results.clients[(results.clients["round"] > 4) & (results.clients.status == "applied")]
    return riders, set(late.client_id), results.incentives


def test_proportional_pay_drives_free_riders_away_and_equal_pay_keeps_them(tiny, tmp_path):
    riders, late, incentives = participation(tiny, tmp_path, "proportional")
    assert riders and not riders & late
    declined = incentives[incentives.client_id.isin(riders) & ~incentives.joins.astype(bool)]
    assert len(declined) and (declined.expected_reward < declined.cost).all()
    riders, late, incentives = participation(tiny, tmp_path, "equal")
    assert riders & late
    assert np.allclose(incentives[incentives.participated.astype(bool)].groupby("round").reward.sum(), 1.0)


def test_rounds_gtg_truncates_leave_reputations_at_the_prior(tiny, tmp_path):
    """Issue 24 (7): every round truncated (|v(N) - v(empty)| <= 1 always): nobody was valued,
    so no reputation moves from the newcomer's 0.5 and no round counts as valued. (A budget
    below 2^4 keeps GTG estimating rather than computing the exact value.)"""
    outcome, contributions, _ = valued(tiny, tmp_path, run={"rounds": 4},
                                       contribution={"methods": ["gtg"], "round_truncation": 1.0,
                                                     "max_evaluations": 15},
                                       incentive={"scheme": "reputation"})
    incentives = load(outcome.run_dir).incentives
    assert (contributions.stopped == "round_truncated").all() and not contributions.valued.any()
    assert (incentives.reputation == 0.5).all() and not incentives.valued.any()
    summary = pd.read_parquet(outcome.run_dir / "contribution_summary.parquet")
    assert (summary.rounds_valued == 0).all() and summary.mean_value.isna().all()


def test_the_ray_executor_gives_the_local_values(ray_runtime, tiny, tmp_path):
    sections = dict(run={"rounds": 2}, contribution={"methods": ["gtg", "loo"]})
    _, local, _ = valued(tiny, tmp_path, **sections)
    _, remote, _ = valued(tiny, tmp_path, **{**sections, "run": {"rounds": 2, "executor": "ray"}})
    columns = ["round", "client_id", "method", "value", "utility_calls", "permutations"]
    pd.testing.assert_frame_equal(local[columns], remote[columns])


def test_a_resumed_run_values_and_pays_as_an_uninterrupted_one(tiny, tmp_path):
    scenario = tiny(run={"rounds": 5}, system={"dropout": 0.2}, contribution={"methods": ["gtg", "fedsv"]},
                    incentive={"scheme": "reputation", "price_per_compute_s": 0.3})
    whole = run(scenario, results_root=tmp_path / "whole")

    def stop_after_round_2(row: dict) -> None:
        if row["round"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(scenario, results_root=tmp_path / "cut", on_round=stop_after_round_2)
    (cut_dir,) = (tmp_path / "cut" / "tiny").iterdir()
    run(scenario, resume=cut_dir)
    for table in ("contributions", "incentives"):
        want, got = (pd.read_parquet(d / f"{table}.parquet") for d in (whole.run_dir, cut_dir))
        pd.testing.assert_frame_equal(want.drop(columns=["seconds"], errors="ignore"),
                                      got.drop(columns=["seconds"], errors="ignore"))


def test_paying_without_a_price_or_reputation_draws_the_clients_as_without_incentives(tiny, tmp_path):
    plain = run(tiny(contribution={"methods": ["loo"]}), results_root=tmp_path / "plain")
    paid = run(tiny(contribution={"methods": ["loo"]}, incentive={"scheme": "proportional"}),
               results_root=tmp_path / "paid")
    columns = ["round", "task_id", "client_id", "status"]
    pd.testing.assert_frame_equal(pd.read_parquet(plain.run_dir / "clients.parquet")[columns],
                                  pd.read_parquet(paid.run_dir / "clients.parquet")[columns])


def test_every_method_on_fashion_mnist(tmp_path):
    """The shipped Fashion-MNIST scenario, cut to 1 round of 6 clients: every method values them."""
    from pathlib import Path

    from raysim.data.datasets import DatasetNotFoundError
    from raysim.scenario.sections import load_scenario

    path = Path(__file__).parents[2] / "scenarios/contribution/fmnist_free_riders.toml"
    scenario = load_scenario(path, ("run.rounds=1", "data.num_clients=6", "selection.clients_per_round=6",
                                    "contribution.max_evaluations=64", "contribution.max_permutations=30"))
    try:
        outcome = run(scenario, results_root=tmp_path)
    except DatasetNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    contributions = load(outcome.run_dir).contributions
    assert set(contributions.method) == set(ALL) and set(contributions.client_id) == set(range(6))
