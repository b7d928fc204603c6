"""FedNova step norms and normalised averaging."""

import numpy as np
import pytest

from raysim.algorithms.fednova import fednova_aggregate, local_step_norm


def test_plain_sgd_norm_is_step_count():
    assert local_step_norm(steps=5) == 5.0


def test_momentum_norm_by_hand():
    # a = [1, 1 + rho, 1 + rho + rho^2] = [1, 1.5, 1.75] for rho = 0.5, tau = 3.
    assert local_step_norm(steps=3, momentum=0.5) == pytest.approx(4.25, rel=1e-12)
    assert local_step_norm(steps=1, momentum=0.9) == pytest.approx(1.0, rel=1e-12)


def test_proximal_norm_by_hand():
    # a = [(1 - lr mu)^2, 1 - lr mu, 1] = [0.81, 0.9, 1] for lr mu = 0.1, tau = 3.
    assert local_step_norm(steps=3, proximal_mu=1.0, lr=0.1) == pytest.approx(2.71, rel=1e-12)


def test_proximal_norm_tends_to_step_count():
    assert local_step_norm(steps=7, proximal_mu=1e-12, lr=0.1) == pytest.approx(7.0, rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2, "momentum": 1.0}, "momentum"),
        ({"steps": 2, "proximal_mu": -0.1}, "proximal_mu"),
        ({"steps": 2, "momentum": 0.9, "proximal_mu": 0.1, "lr": 0.1}, "both"),
        ({"steps": 2, "proximal_mu": 0.1}, "lr"),
        ({"steps": 2, "proximal_mu": 10.0, "lr": 0.1}, r"lr \* proximal_mu"),
    ],
)
def test_bad_norm_settings_raise(kwargs, param):
    with pytest.raises(ValueError, match=param):
        local_step_norm(**kwargs)


def test_equal_steps_is_fedavg():
    rng = np.random.default_rng(0)
    deltas = rng.normal(size=(3, 20))
    weights = np.array([10.0, 30.0, 60.0])
    fedavg = (weights / weights.sum()) @ deltas
    np.testing.assert_allclose(
        fednova_aggregate(deltas, weights, np.full(3, 5.0)), fedavg, rtol=1e-12, atol=1e-12
    )


def test_two_clients_unequal_steps_by_hand():
    deltas = np.array([[1.0, 2.0, 0.0], [4.0, 0.0, -4.0]])
    norms = np.array([1.0, 4.0])
    # Equal weights: tau_eff = 2.5, normalised mean = [1, 1, -0.5]; FedAvg would give [2.5, 1, -2].
    np.testing.assert_allclose(
        fednova_aggregate(deltas, np.array([1.0, 1.0]), norms), [2.5, 2.5, -1.25], rtol=1e-12
    )
    # Weights 3:1: tau_eff = 1.75, normalised mean = [1, 1.5, -0.25].
    np.testing.assert_allclose(
        fednova_aggregate(deltas, np.array([3.0, 1.0]), norms), [1.75, 2.625, -0.4375], rtol=1e-12
    )


@pytest.mark.parametrize(
    ("weights", "norms", "param"),
    [
        ([1.0, 1.0, 1.0], [1.0, 1.0], "weights and norms"),
        ([1.0, -1.0], [1.0, 1.0], "weights"),
        ([0.0, 0.0], [1.0, 1.0], "weights"),
        ([1.0, 1.0], [1.0, 0.0], "norms"),
    ],
)
def test_bad_aggregate_inputs_raise(weights, norms, param):
    with pytest.raises(ValueError, match=param):
        fednova_aggregate(np.ones((2, 3)), np.array(weights), np.array(norms))
