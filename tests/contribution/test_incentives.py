"""Rewards, reputation, participation and the Stackelberg game against their closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysim.incentives.participation import Earnings, joins, task_cost
from raysim.incentives.rewards import BetaReputation, proportional, stationary_score
from raysim.incentives.stackelberg import equilibrium, play, server_payoff


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(0, 999), st.floats(-3, 3, allow_nan=False), min_size=1, max_size=12),
       st.floats(0.1, 100))
def test_proportional_spends_at_most_the_budget_and_never_pays_nonpositive(values, budget):
    paid = proportional(values, budget)
    assert set(paid) == set(values) and all(r >= 0 for r in paid.values())
    assert all(paid[c] == 0 for c, v in values.items() if v <= 0)
    total = sum(paid.values())
    assert math.isclose(total, budget, rel_tol=1e-9) if any(v > 0 for v in values.values()) else total == 0


def test_beta_reputation_prior_and_stationary_score():
    assert BetaReputation().score == 0.5
    p, decay = 0.7, 0.8
    reputation = BetaReputation()
    for _ in range(200):  # expected outcomes each round: p positive, 1 - p negative
        reputation = reputation.observe(p, 1 - p, decay)
    assert reputation.alpha == pytest.approx(p / (1 - decay))
    assert reputation.score == pytest.approx(stationary_score(p, decay))
    draw = np.random.default_rng(0)
    scores = []
    for _ in range(20_000):  # Bernoulli outcomes: the mean counts match too
        hit = float(draw.random() < p)
        reputation = reputation.observe(hit, 1 - hit, decay)
        scores.append(reputation.alpha)
    assert np.mean(scores) == pytest.approx(p / (1 - decay), rel=0.02)
    assert stationary_score(p, 0.999999) == pytest.approx(p, abs=1e-5)


def test_stackelberg_oracle_and_simulation():
    a, costs = 10.0, (0.5, 1.0, 2.0, 4.0)
    closed = equilibrium(a, costs)
    assert closed.price == pytest.approx(1.029040, abs=1e-6)
    assert closed.total_effort == pytest.approx(3.858899, abs=1e-6)
    played = play(a, costs)
    assert played.price == pytest.approx(closed.price, abs=1e-6)
    assert played.efforts == pytest.approx(closed.efforts, abs=1e-5)
    grid = np.arange(1e-5, 3, 1e-5)
    capacity = sum(1 / c for c in costs)
    best = grid[np.argmax([server_payoff(a, p, [p * capacity]) for p in grid])]
    assert best == pytest.approx(closed.price, abs=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.1, 50), st.lists(st.floats(0.1, 10), min_size=1, max_size=8))
def test_stackelberg_simulated_matches_closed_form(a, costs):
    closed, played = equilibrium(a, costs), play(a, costs)
    assert played.price == pytest.approx(closed.price, rel=1e-5, abs=1e-7)


def test_participation():
    cost = task_cost(2.0, 5.0, price_per_compute_s=0.1, price_per_mb=0.02)
    assert cost == pytest.approx(0.3)
    earnings = Earnings()
    assert earnings.expected(prior=0.25) == 0.25 and not joins(0.25, cost)
    earnings = earnings.add(0.5).add(0.3)
    assert earnings.expected(prior=0.0) == pytest.approx(0.4) and joins(earnings.expected(0.0), cost)
    with pytest.raises(ValueError):
        equilibrium(1.0, [0.0])


def test_a_round_that_was_not_valued_is_no_outcome():
    """Issue 24 (7): GTG-truncated or budget-cut rounds give every player 0 without valuing
    anyone. 20 of them must leave a participant at the newcomer's prior 0.5 (it was 0.09 when
    a 0 counted as a negative outcome) and keep its expected reward at the mean over the rounds
    it was valued in; a value that was found, 0 included, still counts."""
    from raysim.contribution import Utility
    from raysim.contribution.permutations import gtg_shapley, tmc_shapley
    from raysim.incentives.config import IncentiveConfig
    from raysim.sim.cost.devices import Population, SystemConfig
    from raysim.sim.stages.incentives import IncentiveStage

    def Incentives(config, *, pay_by, cohort):
        return IncentiveStage(config, pay_by=pay_by, cohort=cohort, population=Population(SystemConfig(), 3, seed=0),
                              epochs=1, model_bytes=4, update_bytes=4)

    flat = gtg_shapley([1, 2], Utility(lambda cs: [0.5] * len(cs)), np.random.default_rng(0))
    cut = tmc_shapley([1, 2], Utility(lambda cs: [float(len(c)) for c in cs], max_evaluations=2),
                      np.random.default_rng(0))
    assert (flat.stopped, flat.valued, cut.stopped, cut.valued) == ("round_truncated", False, "budget", False)
    assert set(flat.values.values()) == set(cut.values.values()) == {0.0}  # the 0s that used to count
    found = tmc_shapley([1, 2], Utility(lambda cs: [0.0] * len(cs)), np.random.default_rng(0), truncation=0.0)
    assert found.valued and set(found.values.values()) == {0.0}  # a 0 an estimate found is a value

    incentives = Incentives(IncentiveConfig(scheme="reputation", decay=0.9), pay_by="gtg", cohort=2)
    incentives.settle(1, {1: 0.3, 2: 0.1}, [1, 2])
    valued_once, earned_once = incentives.score(1), incentives.expected(1)
    for round_number in range(2, 22):
        rows = incentives.settle(round_number, {}, [1, 2])  # nobody valued this round
        assert not any(r["valued"] for r in rows)
    assert incentives.score(1) == valued_once and incentives.expected(1) == earned_once
    newcomer = Incentives(IncentiveConfig(scheme="reputation", decay=0.9), pay_by="gtg", cohort=2)
    for round_number in range(1, 21):
        newcomer.settle(round_number, {}, [1, 2])
    assert newcomer.score(1) == newcomer.score(99) == 0.5
    newcomer.settle(21, {1: 0.0, 2: 0.2}, [1, 2])  # a found 0 is a negative outcome
    assert newcomer.score(1) < 0.5 < newcomer.score(2)
    equal = Incentives(IncentiveConfig(scheme="equal"), pay_by="gtg", cohort=2)
    equal.settle(1, {}, [1, 2])  # an even split is paid whatever the values: a paid round
    assert equal.earnings[1].rounds == 1 and equal.score(1) == 0.5
