"""Staleness discounts and the FedAsync mixing step."""

import dataclasses

import numpy as np
import pytest

from raysim.algorithms.staleness import (
    STALENESS_FUNCTIONS,
    StalenessWeight,
    constant,
    fedasync_mix,
    fedbuff,
    hinge,
    polynomial,
)


def test_constant():
    assert constant(0) == constant(10) == 1.0


def test_polynomial():
    assert polynomial(0) == 1.0
    assert polynomial(3) == pytest.approx(0.5)  # 4 ** -0.5
    assert polynomial(8, a=1.0) == pytest.approx(1 / 9)


def test_hinge():
    assert hinge(0) == hinge(4) == 1.0  # within b = 4
    assert hinge(5) == pytest.approx(1 / 11)  # 1 / (10 * 1 + 1)
    assert hinge(6, a=1.0, b=4.0) == pytest.approx(1 / 3)


def test_fedbuff():
    assert fedbuff(0) == 1.0
    assert fedbuff(3) == pytest.approx(0.5)
    assert fedbuff(8) == pytest.approx(1 / 3)


@pytest.mark.parametrize("fn", list(STALENESS_FUNCTIONS.values()))
def test_negative_staleness_raises(fn):
    with pytest.raises(ValueError, match="staleness"):
        fn(-1)


def test_registry_names():
    assert set(STALENESS_FUNCTIONS) == {"constant", "polynomial", "hinge", "fedbuff"}


def test_staleness_weight_uses_defaults_and_overrides():
    assert StalenessWeight("polynomial")(3) == pytest.approx(0.5)
    assert StalenessWeight("hinge", a=1.0, b=4.0)(6) == pytest.approx(1 / 3)
    assert StalenessWeight("hinge")(5) == pytest.approx(1 / 11)
    assert StalenessWeight("fedbuff")(8) == pytest.approx(1 / 3)
    assert StalenessWeight("constant")(100) == 1.0


def test_staleness_weight_validation():
    with pytest.raises(ValueError, match="kind"):
        StalenessWeight("exponential")
    with pytest.raises(ValueError, match="a must be None"):
        StalenessWeight("constant", a=1.0)
    with pytest.raises(ValueError, match="b must be None"):
        StalenessWeight("polynomial", b=1.0)
    with pytest.raises(ValueError, match="a must be >= 0"):
        StalenessWeight("polynomial", a=-1.0)
    with pytest.raises(ValueError, match="staleness"):
        StalenessWeight("hinge")(-2)


def test_staleness_weight_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        StalenessWeight("constant").kind = "hinge"


X = np.array([0.0, 2.0, -4.0])
X_NEW = np.array([1.0, 4.0, 0.0])


def test_fedasync_mix_full_rate_returns_client_model():
    np.testing.assert_array_equal(fedasync_mix(X, X_NEW, alpha=1.0, weight=constant(7)), X_NEW)


def test_fedasync_mix_half_is_midpoint():
    np.testing.assert_array_equal(fedasync_mix(X, X_NEW, alpha=0.5, weight=1.0), [0.5, 3.0, -2.0])


def test_fedasync_mix_scales_rate_by_weight():
    # a_t = 0.5 * 0.5 = 0.25
    np.testing.assert_array_equal(fedasync_mix(X, X_NEW, alpha=0.5, weight=0.5), [0.25, 2.5, -3.0])


def test_fedasync_mix_keeps_dtype_and_inputs():
    x = X.astype(np.float32)
    out = fedasync_mix(x, X_NEW, alpha=0.5, weight=1.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(x, X.astype(np.float32))


@pytest.mark.parametrize(
    ("alpha", "weight", "param"), [(0.0, 1.0, "alpha"), (1.5, 1.0, "alpha"), (0.5, -0.1, "weight")]
)
def test_fedasync_mix_bad_rates_raise(alpha, weight, param):
    with pytest.raises(ValueError, match=param):
        fedasync_mix(X, X_NEW, alpha=alpha, weight=weight)
