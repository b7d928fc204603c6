"""Attacks and attacker selection."""

import numpy as np
import pytest

from raysim.algorithms.attacks import (
    ATTACKER_STREAM,
    ATTACKS,
    FreeRider,
    GaussianNoise,
    LabelFlip,
    Scaled,
    SignFlip,
    choose_attackers,
)
from raysim.algorithms.robust import coordinate_median

DELTA = np.array([1.0, -2.0, 0.5])


def test_sign_flip():
    np.testing.assert_array_equal(SignFlip()(DELTA), [-1.0, 2.0, -0.5])
    np.testing.assert_array_equal(SignFlip(scale=2.0)(DELTA, np.random.default_rng(0)), -2 * DELTA)


def test_scaled():
    np.testing.assert_array_equal(Scaled()(DELTA), 10 * DELTA)
    np.testing.assert_array_equal(Scaled(factor=3.0)(DELTA), [3.0, -6.0, 1.5])


def test_gaussian_noise_uses_the_given_generator():
    out = GaussianNoise(std=0.5)(DELTA, np.random.default_rng(3))
    expected = DELTA + np.random.default_rng(3).normal(0.0, 0.5, size=3)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(GaussianNoise(std=0.0)(DELTA, np.random.default_rng(3)), DELTA)


def test_gaussian_noise_requires_generator():
    with pytest.raises(ValueError, match="rng"):
        GaussianNoise()(DELTA)


def test_update_attacks_do_not_mutate_and_return_float64():
    delta = DELTA.astype(np.float32)
    for attack in (SignFlip(), Scaled(), GaussianNoise()):
        out = attack(delta, np.random.default_rng(0))
        assert out.dtype == np.float64
    np.testing.assert_array_equal(delta, DELTA.astype(np.float32))


def test_label_flip():
    labels = np.array([0, 3, 9], dtype=np.int32)
    out = LabelFlip(num_classes=10)(labels)
    np.testing.assert_array_equal(out, [9, 6, 0])
    assert out.dtype == np.int32


def test_label_flip_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="labels"):
        LabelFlip(num_classes=3)(np.array([0, 3]))


@pytest.mark.parametrize(
    ("factory", "param"),
    [
        (lambda: SignFlip(scale=0.0), "scale"),
        (lambda: Scaled(factor=-1.0), "factor"),
        (lambda: GaussianNoise(std=-1.0), "std"),
        (lambda: LabelFlip(num_classes=1), "num_classes"),
    ],
)
def test_bad_parameters_raise(factory, param):
    with pytest.raises(ValueError, match=param):
        factory()


def test_registry_and_targets():
    assert ATTACKS == {
        "sign_flip": SignFlip,
        "scaled": Scaled,
        "gaussian": GaussianNoise,
        "label_flip": LabelFlip,
        "free_rider": FreeRider,
    }
    assert {name: cls.target for name, cls in ATTACKS.items()} == {
        "sign_flip": "update",
        "scaled": "update",
        "gaussian": "update",
        "label_flip": "labels",
        "free_rider": "update",
    }


def test_free_rider_sends_zeros_or_noise_that_ignores_its_delta():
    np.testing.assert_array_equal(FreeRider()(DELTA), np.zeros(3))
    noisy = FreeRider(std=2.0)
    sent = noisy(DELTA, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(sent, noisy(-100 * DELTA, rng=np.random.default_rng(1)))  # nothing learned
    np.testing.assert_allclose(sent, np.random.default_rng(1).normal(0.0, 2.0, size=3))
    with pytest.raises(ValueError, match="rng"):
        noisy(DELTA)
    with pytest.raises(ValueError, match="std"):
        FreeRider(std=-1.0)


def test_choose_attackers_is_deterministic_and_sorted():
    ids = choose_attackers(10, 0.3, seed=1)
    assert ids.dtype == np.int64
    assert len(ids) == 3 and len(set(ids.tolist())) == 3
    assert np.all(np.diff(ids) > 0) and ids.min() >= 0 and ids.max() < 10
    np.testing.assert_array_equal(ids, choose_attackers(10, 0.3, seed=1))
    expected = np.sort(np.random.default_rng([1, ATTACKER_STREAM]).choice(10, 3, replace=False))
    np.testing.assert_array_equal(ids, expected)


def test_choose_attackers_counts():
    assert len(choose_attackers(5, 0.5, seed=0)) == 2  # round(2.5) == 2, half to even
    assert len(choose_attackers(7, 0.5, seed=0)) == 4  # round(3.5) == 4
    assert len(choose_attackers(10, 0.0, seed=0)) == 0
    np.testing.assert_array_equal(choose_attackers(4, 1.0, seed=0), [0, 1, 2, 3])


@pytest.mark.parametrize(
    ("args", "param"),
    [((0, 0.5, 0), "num_clients"), ((10, 1.5, 0), "fraction"), ((10, 0.5, -1), "seed")],
)
def test_choose_attackers_bad_arguments(args, param):
    with pytest.raises(ValueError, match=param):
        choose_attackers(*args)


def test_scaled_attacker_moves_mean_but_not_median():
    rng = np.random.default_rng(0)
    honest = 1.0 + 0.01 * rng.normal(size=(4, 3))
    updates = np.vstack([honest, Scaled(factor=100.0)(honest[0])])
    assert np.all(updates.mean(axis=0) > 20.0)
    np.testing.assert_allclose(coordinate_median(updates), 1.0, atol=0.05)
