"""Robust aggregation rules on a hand-computed five-client example."""

import numpy as np
import pytest

from raysim.algorithms.robust import (
    ROBUST_AGGREGATORS,
    coordinate_median,
    krum,
    krum_scores,
    multi_krum,
    trimmed_mean,
)

# Four honest clients a, b, c, d and one outlier e.
U = np.array(
    [
        [1.0, 0.0, 2.0],
        [2.0, 1.0, 2.0],
        [3.0, 0.0, 4.0],
        [2.0, 2.0, 3.0],
        [100.0, -100.0, 100.0],
    ]
)
# Squared distances: ab 2, ac 8, ad 6, bc 6, bd 2, cd 6; e is >= 28625 from all.
# With f = 1 each row sums its K - f - 2 = 2 nearest: a 2+6, b 2+2, c 6+6, d 2+6,
# e 28625 (to c) + 29405 (to a).
SCORES = np.array([8.0, 4.0, 12.0, 8.0, 58030.0])


def test_outlier_moves_the_plain_mean():
    assert U.mean(axis=0)[0] == pytest.approx(21.6)


def test_coordinate_median_ignores_outlier():
    np.testing.assert_array_equal(coordinate_median(U), [2.0, 0.0, 3.0])


def test_coordinate_median_even_count_averages_middle_pair():
    np.testing.assert_array_equal(coordinate_median(U[:4]), [2.0, 0.5, 2.5])


def test_trimmed_mean_ignores_outlier():
    np.testing.assert_allclose(trimmed_mean(U, trim=1), [7 / 3, 1 / 3, 3.0], rtol=1e-12)


def test_trimmed_mean_zero_trim_is_mean():
    np.testing.assert_allclose(trimmed_mean(U, trim=0), U.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("trim", [-1, 3])
def test_trimmed_mean_rejects_bad_trim(trim):
    with pytest.raises(ValueError, match="trim"):
        trimmed_mean(U, trim=trim)


def test_krum_scores_by_hand():
    np.testing.assert_allclose(krum_scores(U, num_byzantine=1), SCORES, rtol=1e-12)


def test_krum_selects_most_central_row():
    np.testing.assert_array_equal(krum(U, num_byzantine=1), U[1])


def test_krum_ties_pick_lowest_index():
    tied = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(krum_scores(tied, num_byzantine=0), [3.0, 3.0, 3.0, 3.0])
    np.testing.assert_array_equal(krum(tied, num_byzantine=0), tied[0])


def test_krum_requires_enough_clients():
    with pytest.raises(ValueError, match=r"K > num_byzantine \+ 2"):
        krum_scores(U[:3], num_byzantine=1)
    with pytest.raises(ValueError, match="num_byzantine"):
        krum_scores(U, num_byzantine=-1)


def test_multi_krum_averages_lowest_scores():
    # b (4), then the a/d tie at 8 broken towards a.
    np.testing.assert_allclose(multi_krum(U, 1, 2), [1.5, 0.5, 2.0], rtol=1e-12)
    np.testing.assert_allclose(multi_krum(U, 1, 3), [5 / 3, 1.0, 7 / 3], rtol=1e-12)
    np.testing.assert_array_equal(multi_krum(U, 1, 1), krum(U, 1))


@pytest.mark.parametrize("num_selected", [0, 6])
def test_multi_krum_rejects_bad_selection(num_selected):
    with pytest.raises(ValueError, match="num_selected"):
        multi_krum(U, 1, num_selected)


def test_rejects_non_matrix_updates():
    with pytest.raises(ValueError, match="updates"):
        coordinate_median(np.ones(3))


def test_krum_returns_a_copy():
    out = krum(U, 1)
    out[:] = 0.0
    assert U[1, 0] == 2.0


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("median", {}, coordinate_median(U)),
        ("trimmed_mean", {"trim": 1}, trimmed_mean(U, 1)),
        ("krum", {"num_byzantine": 1}, krum(U, 1)),
        ("multi_krum", {"num_byzantine": 1, "num_selected": 3}, multi_krum(U, 1, 3)),
    ],
)
def test_registry_has_uniform_signature_and_ignores_weights(name, params, expected):
    rule = ROBUST_AGGREGATORS[name]
    for weights in (np.ones(5), np.array([1.0, 0.0, 0.0, 0.0, 1e6])):
        np.testing.assert_array_equal(rule(U, weights, **params), expected)
