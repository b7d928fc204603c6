"""FedAvg, unweighted averaging and FedSGD against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from raysim.algorithms.aggregation import client_weights, weighted_mean
from raysim.algorithms.server_opt import make_server_optimizer
from raysim.algorithms.strategy import Strategy, Update
from tests.conftest import server_start as _start, server_step_of as _step


def test_fedavg_weights_by_the_selected_clients_samples():
    deltas = [np.array([1.0, 0.0, 2.0]), np.array([3.0, 3.0, 0.0])]
    # n = 1 and 3: (1*[1,0,2] + 3*[3,3,0]) / 4 = [2.5, 2.25, 0.5]
    np.testing.assert_allclose(weighted_mean(deltas, client_weights([1, 3], "samples")), [2.5, 2.25, 0.5])


def test_uniform_weighting_is_the_plain_mean():
    deltas = [np.array([1.0, 0.0, 2.0]), np.array([3.0, 3.0, 0.0])]
    np.testing.assert_allclose(weighted_mean(deltas, client_weights([1, 3], "uniform")), [2.0, 1.5, 1.0])


def test_scales_discount_without_renormalising():
    deltas = [np.array([2.0]), np.array([4.0])]
    # (1 * 0.5 * 2 + 1 * 1 * 4) / 2 = 2.5
    np.testing.assert_allclose(weighted_mean(deltas, [1, 1], [0.5, 1.0]), [2.5])


def test_fedavg_strategy_moves_the_model_by_the_weighted_mean_delta():
    strategy = Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0))
    state = _start(strategy, np.array([1.0, 1.0, 1.0], dtype=np.float32))
    updates = [Update(client_id=1, num_samples=1, steps=1, delta=np.array([1.0, 0.0, 2.0])),
               Update(client_id=0, num_samples=3, steps=1, delta=np.array([3.0, 3.0, 0.0]))]
    new, metrics = _step(strategy, state, updates)
    np.testing.assert_allclose(new.params, [3.5, 3.25, 1.5])
    assert new.params.dtype == np.float32 and new.version == 1
    assert metrics["update_norm"] == pytest.approx(np.linalg.norm([2.5, 2.25, 0.5]))


def test_fedsgd_applies_averaged_gradients_with_the_server_rate():
    # Clients send delta = -gradient (one full-batch step with lr 1); server lr 0.1.
    strategy = Strategy(server_optimizer=make_server_optimizer("sgd", lr=0.1))
    state = _start(strategy, np.zeros(2, dtype=np.float32))
    grads = [np.array([1.0, 2.0]), np.array([3.0, -2.0])]
    updates = [Update(client_id=i, num_samples=n, steps=1, delta=-g) for i, (g, n) in enumerate(zip(grads, [2, 2]))]
    new, _ = _step(strategy, state, updates)
    np.testing.assert_allclose(new.params, [-0.2, 0.0], atol=1e-7)


def test_aggregation_does_not_depend_on_arrival_order():
    strategy = Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0))
    rng = np.random.default_rng(0)
    updates = [Update(client_id=i, num_samples=int(rng.integers(1, 100)), steps=1,
                      delta=rng.normal(size=1000).astype(np.float32)) for i in range(20)]
    state = _start(strategy, np.zeros(1000, dtype=np.float32))
    forward, _ = _step(strategy, state, updates)
    backward, _ = _step(strategy, state, updates[::-1])
    np.testing.assert_array_equal(forward.params, backward.params)


def test_a_round_without_updates_keeps_the_model():
    strategy = Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0))
    state = _start(strategy, np.ones(3, dtype=np.float32))
    new, _ = _step(strategy, state, [])
    np.testing.assert_array_equal(new.params, state.params)
    assert new.version == 1


def _updates(deltas, samples, steps=None):
    steps = steps or [1] * len(deltas)
    return [Update(client_id=i, num_samples=n, steps=s, delta=np.asarray(d, dtype=np.float64))
            for i, (d, n, s) in enumerate(zip(deltas, samples, steps))]


def test_median_aggregator_ignores_an_outlier_the_mean_follows():
    updates = _updates([[1.0, 1.0], [1.2, 0.8], [100.0, -100.0]], [1, 1, 1])
    median = Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0), reducer="median")
    np.testing.assert_allclose(median.reduce(updates), [1.2, 0.8])
    mean = Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0))
    assert abs(mean.reduce(updates)[0]) > 30


def test_fednova_with_equal_local_steps_equals_fedavg():
    updates = _updates([[1.0, 2.0], [3.0, -1.0]], [10, 30], steps=[5, 5])
    sgd = make_server_optimizer("sgd", lr=1.0)
    np.testing.assert_allclose(Strategy(server_optimizer=sgd, reducer="fednova").reduce(updates),
                               Strategy(server_optimizer=sgd).reduce(updates), rtol=1e-12)


def test_fednova_normalises_unequal_local_steps():
    # p = 1/2 each, a = 1 and 4 steps: D = tau_eff * sum p_i d_i / a_i with tau_eff = 2.5
    updates = _updates([[1.0], [4.0]], [1, 1], steps=[1, 4])
    strategy = Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0), reducer="fednova")
    np.testing.assert_allclose(strategy.reduce(updates), [2.5 * (0.5 * 1.0 + 0.5 * 1.0)])


def test_a_user_weighting_function_sets_the_weights():
    strategy = Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0), weighting=lambda cid, n: 1.0 + cid)
    # weights 1 and 2: (1*[3] + 2*[6]) / 3 = [5]
    np.testing.assert_allclose(strategy.reduce(_updates([[3.0], [6.0]], [100, 1])), [5.0])


def test_server_adam_takes_the_reddi_step_on_the_mean_delta():
    strategy = Strategy(server_optimizer=make_server_optimizer("adam", lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3))
    state = _start(strategy, np.zeros(1, dtype=np.float64))
    new, _ = _step(strategy, state, _updates([[2.0], [4.0]], [1, 1]))
    # D = 3; m = 0.1 * 3 = 0.3; v = 0.99 * 1e-6 + 0.01 * 9; w = 0.1 * m / (sqrt(v) + tau)
    m, v = 0.3, 0.99 * 1e-6 + 0.01 * 9
    np.testing.assert_allclose(new.params, [0.1 * m / (np.sqrt(v) + 1e-3)])


def weight_by_id(client_id: int, samples: int) -> float:
    return float(client_id + 1)


def test_scenario_builds_the_named_composition(tiny):
    from raysim.scenario.composition import make_strategy

    strategy = make_strategy(tiny(server={"optimizer": "yogi", "lr": 0.01, "aggregator": "trimmed_mean", "trim": 1,
                                          "weighting": "tests.algorithms.test_aggregation:weight_by_id"}))
    assert strategy.reducer == "trimmed_mean" and strategy.reducer_params == {"trim": 1}
    assert strategy.weighting is weight_by_id
    assert type(strategy.server_optimizer).__name__ == "FedYogi"
