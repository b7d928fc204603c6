"""The valuations' axioms on random games, and the estimators against the exact value."""

from __future__ import annotations

import math
from itertools import permutations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raysim.contribution import ContributionConfig, Utility, value_round
from raysim.contribution.exact import EXACT_MAX_PLAYERS, exact_shapley, leave_one_out
from raysim.contribution.permutations import gtg_shapley, tmc_shapley
from raysim.contribution.utility import BudgetExhausted


def table_game(players, values):
    """A game given by one value per coalition (bitmask over ``players``), v(empty) included."""
    index = {p: i for i, p in enumerate(players)}

    def evaluate(coalitions):
        return [values[sum(1 << index[p] for p in c)] for c in coalitions]

    return evaluate


@st.composite
def games(draw, low=1, high=6):
    n = draw(st.integers(low, high))
    players = draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
    values = draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=2 ** n, max_size=2 ** n))
    return players, values


@settings(max_examples=60, deadline=None)
@given(games())
def test_efficiency(game):
    players, values = game
    phi = exact_shapley(players, Utility(table_game(players, values)))
    assert math.isclose(sum(phi.values()), values[-1] - values[0], abs_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(games(low=2), st.data())
def test_symmetry_and_null_player(game, data):
    """Make players 0 and 1 symmetric and the last a null player; the values must follow."""
    players, values = game
    n = len(players)
    values = list(values)
    for mask in range(2 ** n):  # v(S + 1) := v(S + 0) for S without both
        if mask & 1 and not mask & 2:
            values[(mask & ~1) | 2] = values[mask]
    if n >= 3:
        null = 1 << (n - 1)
        for mask in range(2 ** n):
            if mask & null:
                values[mask] = values[mask & ~null]
    phi = exact_shapley(players, Utility(table_game(players, values)))
    assert math.isclose(phi[players[0]], phi[players[1]], abs_tol=1e-9)
    if n >= 3:
        assert abs(phi[players[-1]]) < 1e-9


@settings(max_examples=40, deadline=None)
@given(games(), st.data())
def test_additivity_across_rounds(game, data):
    """phi(v + v') = phi(v) + phi(v'): two rounds' values add up to the summed game's."""
    players, first = game
    second = data.draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=len(first), max_size=len(first)))
    both = [a + b for a, b in zip(first, second)]
    one, two, summed = (exact_shapley(players, Utility(table_game(players, v))) for v in (first, second, both))
    for p in players:
        assert math.isclose(one[p] + two[p], summed[p], abs_tol=1e-9)


def test_closed_form_games():
    players = [7, 3, 11, 5]
    a = {7: 1.0, 3: -2.0, 11: 0.5, 5: 4.0}
    additive = Utility(lambda cs: [sum(a[p] for p in c) for c in cs])
    assert exact_shapley(players, additive) == pytest.approx(a)
    assert leave_one_out(players, additive) == pytest.approx(a)
    unanimity = Utility(lambda cs: [float({7, 11} <= set(c)) for c in cs])
    assert exact_shapley(players, unanimity) == pytest.approx({7: 0.5, 3: 0.0, 11: 0.5, 5: 0.0})


@settings(max_examples=25, deadline=None)
@given(games(low=1, high=5))
def test_gtg_with_all_orders_and_no_truncation_is_exact(game):
    players, values = game
    n = len(players)
    every = np.array(list(permutations(range(n))))
    estimate = gtg_shapley(players, Utility(table_game(players, values)), np.random.default_rng(0),
                           round_truncation=-1.0, truncation=0.0, max_permutations=len(every),
                           min_permutations=len(every), orders=iter([every]))
    exact = exact_shapley(players, Utility(table_game(players, values)))
    assert estimate.permutations == math.factorial(n)
    assert estimate.values == pytest.approx(exact, abs=1e-9)


def noisy_game(n, seed=0):
    """A smooth, monotone-ish game: a concave function of the coalition's weights."""
    w = np.random.default_rng(seed).uniform(0.1, 1.0, n)
    return lambda cs: [math.sqrt(sum(w[p] for p in c)) for c in cs]


@pytest.mark.parametrize("estimator", [gtg_shapley, tmc_shapley])
def test_estimators_are_close_to_exact_and_seeded(estimator):
    players = list(range(8))
    exact = exact_shapley(players, Utility(noisy_game(8)))
    # tolerance 0: no early stop, so all 400 orders are averaged
    runs = [estimator(players, Utility(noisy_game(8)), np.random.default_rng(5), truncation=0.0, max_permutations=400,
                      tolerance=0.0)
            for _ in range(2)]
    assert runs[0] == runs[1]  # same seed, same orders, same values
    got = np.array([runs[0].values[p] for p in players])
    want = np.array([exact[p] for p in players])
    assert np.abs(got - want).max() < 0.02
    assert math.isclose(got.sum(), want.sum(), rel_tol=1e-9)  # untruncated: efficient


def test_truncation_saves_evaluations_and_keeps_efficiency_within_tolerance():
    players = list(range(10))
    plain, cut = Utility(noisy_game(10)), Utility(noisy_game(10))
    gtg_shapley(players, plain, np.random.default_rng(1), truncation=0.0, max_permutations=20, min_permutations=20)
    est = gtg_shapley(players, cut, np.random.default_rng(1), truncation=0.5, max_permutations=20, min_permutations=20)
    assert cut.calls < plain.calls
    full, empty = cut([players, []])
    assert abs(sum(est.values.values()) - (full - empty)) <= 0.5  # each order errs by less than the truncation


def test_gtg_between_round_truncation_says_so():
    est = gtg_shapley([1, 2, 3], Utility(lambda cs: [0.5] * len(cs)), np.random.default_rng(0))
    assert est.stopped == "round_truncated" and set(est.values.values()) == {0.0}


def test_budget_stops_estimators_on_complete_orders():
    utility = Utility(noisy_game(8), max_evaluations=60)
    est = tmc_shapley(list(range(8)), utility, np.random.default_rng(0), truncation=0.0)
    assert est.stopped == "budget" and utility.calls <= 60 and est.permutations > 0
    with pytest.raises(BudgetExhausted):
        exact_shapley(list(range(8)), Utility(noisy_game(8), max_evaluations=255))


def test_utility_caches_by_sorted_coalition_and_batches():
    batches = []

    def evaluate(cs):
        batches.append(list(cs))
        return [float(len(c)) for c in cs]

    utility = Utility(evaluate)
    assert list(utility([[3, 1], [1, 3], [2]])) == [2.0, 2.0, 1.0]
    utility([[1, 3], [2]])
    assert batches == [[(1, 3), (2,)]] and utility.calls == 2


def test_exact_refuses_too_many_players():
    with pytest.raises(ValueError, match="gtg"):
        exact_shapley(list(range(EXACT_MAX_PLAYERS + 1)), Utility(noisy_game(EXACT_MAX_PLAYERS + 1)))


def test_value_round_runs_every_method():
    config = ContributionConfig(methods=("loo", "exact", "tmc", "gtg", "fedsv"), max_permutations=40)
    exact = exact_shapley([0, 1, 2, 3], Utility(noisy_game(4)))
    for method in config.methods:
        est = value_round(method, [0, 1, 2, 3], Utility(noisy_game(4)), np.random.default_rng(0), config)
        assert set(est.values) == {0, 1, 2, 3}
        if method != "loo":  # the permutation methods stop at their convergence test
            assert est.values == pytest.approx(exact, abs=0.05)


@pytest.mark.parametrize("method", ["tmc", "gtg"])
def test_permutation_methods_are_exact_when_the_budget_covers_every_coalition(method):
    """Issue 24 (9): with 2^n <= max_evaluations, TMC and GTG used to walk orders over nearly
    every coalition and still report Monte Carlo error; they now compute the exact value and say
    so. One evaluation short of 2^n, they estimate."""
    players = [3, 9, 4, 7, 1, 8]
    exact = exact_shapley(players, Utility(noisy_game(10)))
    covered = ContributionConfig(methods=(method,), max_evaluations=2 ** 6)
    est = value_round(method, players, Utility(noisy_game(10), max_evaluations=2 ** 6), np.random.default_rng(0),
                      covered)
    assert est.stopped == "exact" and est.valued and est.values == exact  # error 0, to the last bit
    short = ContributionConfig(methods=(method,), max_evaluations=2 ** 6 - 1)
    est = value_round(method, players, Utility(noisy_game(10), max_evaluations=2 ** 6 - 1),
                      np.random.default_rng(0), short)
    assert est.stopped != "exact" and est.values != exact
    # the default budget (4,096) covers every round of up to 12 players
    assert value_round(method, list(range(8)), Utility(noisy_game(8)), np.random.default_rng(0),
                       ContributionConfig(methods=(method,))).stopped == "exact"
