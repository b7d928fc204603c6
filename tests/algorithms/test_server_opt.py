"""Server optimisers against hand-computed two-step trajectories."""

import pickle

import numpy as np
import pytest

from raysim.algorithms.server_opt import (
    SERVER_OPTIMIZERS,
    SGD,
    FedAdagrad,
    FedAdam,
    FedYogi,
    Momentum,
    ServerOptState,
    make_server_optimizer,
)

W0 = np.array([1.0, 2.0, 3.0])
D1 = np.array([1.0, -2.0, 0.0])
D2 = np.array([3.0, 0.5, -1.0])
# Adaptive settings chosen so the moments are short decimals: tau^2 = 0.25.
LR, BETA1, BETA2, TAU = 0.1, 0.5, 0.75, 0.5
M1 = np.array([0.5, -1.0, 0.0])  # 0.5 * 0 + 0.5 * D1
M2 = np.array([1.75, -0.25, -0.5])  # 0.5 * M1 + 0.5 * D2


def run_two_steps(opt, params=W0):
    state = opt.init(params)
    w1, state = opt.apply(params, D1, state)
    w2, state = opt.apply(w1, D2, state)
    return w1, w2, state


def adaptive_expected(v1, v2):
    w1 = W0 + LR * M1 / (np.sqrt(v1) + TAU)
    return w1, w1 + LR * M2 / (np.sqrt(v2) + TAU)


def test_sgd_two_steps():
    w1, w2, state = run_two_steps(SGD(lr=0.5))
    np.testing.assert_array_equal(w1, [1.5, 1.0, 3.0])
    np.testing.assert_array_equal(w2, [3.0, 1.25, 2.5])
    assert state.step == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_lr_one_is_fedavg_exactly(dtype):
    rng = np.random.default_rng(0)
    params = rng.normal(size=50).astype(dtype)
    delta = rng.normal(size=50).astype(dtype)
    opt = SGD(lr=1.0)
    new, _ = opt.apply(params, delta, opt.init(params))
    np.testing.assert_array_equal(new, params + delta)


def test_momentum_two_steps():
    w1, w2, state = run_two_steps(Momentum(lr=0.5, momentum=0.5))
    np.testing.assert_array_equal(w1, [1.5, 1.0, 3.0])  # v = D1
    np.testing.assert_array_equal(w2, [3.25, 0.75, 2.5])  # v = 0.5 D1 + D2 = [3.5, -0.5, -1]
    np.testing.assert_array_equal(state.first_moment, [3.5, -0.5, -1.0])


def test_fedadagrad_two_steps():
    v1 = np.array([1.25, 4.25, 0.25])  # 0.25 + D1^2
    v2 = np.array([10.25, 4.5, 1.25])  # v1 + D2^2
    w1, w2, state = run_two_steps(FedAdagrad(lr=LR, beta1=BETA1, tau=TAU))
    exp1, exp2 = adaptive_expected(v1, v2)
    np.testing.assert_allclose(w1, exp1, rtol=1e-12)
    np.testing.assert_allclose(w2, exp2, rtol=1e-12)
    np.testing.assert_allclose(state.first_moment, M2, rtol=1e-12)
    np.testing.assert_allclose(state.second_moment, v2, rtol=1e-12)


def test_fedadam_two_steps():
    v1 = np.array([0.4375, 1.1875, 0.1875])  # 0.75 * 0.25 + 0.25 * D1^2
    v2 = np.array([2.578125, 0.953125, 0.390625])  # 0.75 * v1 + 0.25 * D2^2
    w1, w2, state = run_two_steps(FedAdam(lr=LR, beta1=BETA1, beta2=BETA2, tau=TAU))
    exp1, exp2 = adaptive_expected(v1, v2)
    np.testing.assert_allclose(w1, exp1, rtol=1e-12)
    np.testing.assert_allclose(w2, exp2, rtol=1e-12)
    np.testing.assert_allclose(state.second_moment, v2, rtol=1e-12)


def test_fedyogi_two_steps():
    # Step 1: D1^2 = [1, 4, 0] exceeds/equals v = 0.25 -> v grows by 0.25 D^2 (sign 0 at the last).
    v1 = np.array([0.5, 1.25, 0.25])
    # Step 2: D2^2 = [9, 0.25, 1]; the middle coordinate has v > D^2, so v shrinks there.
    v2 = np.array([2.75, 1.1875, 0.5])
    w1, w2, state = run_two_steps(FedYogi(lr=LR, beta1=BETA1, beta2=BETA2, tau=TAU))
    exp1, exp2 = adaptive_expected(v1, v2)
    np.testing.assert_allclose(w1, exp1, rtol=1e-12)
    np.testing.assert_allclose(w2, exp2, rtol=1e-12)
    np.testing.assert_allclose(state.second_moment, v2, rtol=1e-12)


def test_adaptive_init_state():
    state = FedAdam(lr=1.0, tau=0.1).init(W0)
    np.testing.assert_array_equal(state.first_moment, np.zeros(3))
    np.testing.assert_allclose(state.second_moment, np.full(3, 0.01))
    assert state.step == 0


@pytest.mark.parametrize("name", sorted(SERVER_OPTIMIZERS))
def test_apply_does_not_mutate_inputs(name):
    opt = make_server_optimizer(name, lr=0.1)
    params, delta = W0.copy(), D1.copy()
    _, state = opt.apply(params, delta, opt.init(params))
    snapshot = pickle.dumps(state)
    opt.apply(params, delta, state)
    np.testing.assert_array_equal(params, W0)
    np.testing.assert_array_equal(delta, D1)
    assert pickle.dumps(state) == snapshot


@pytest.mark.parametrize("name", sorted(SERVER_OPTIMIZERS))
def test_dtype_kept_and_state_float64(name):
    opt = make_server_optimizer(name, lr=0.1)
    params = W0.astype(np.float32)
    new, state = opt.apply(params, D1.astype(np.float32), opt.init(params))
    assert new.dtype == np.float32
    for moment in (state.first_moment, state.second_moment):
        assert moment is None or moment.dtype == np.float64


@pytest.mark.parametrize("name", sorted(SERVER_OPTIMIZERS))
def test_state_pickles_and_resumes(name):
    opt = make_server_optimizer(name, lr=0.1)
    w1, state = opt.apply(W0, D1, opt.init(W0))
    restored = pickle.loads(pickle.dumps(state))
    assert isinstance(restored, ServerOptState)
    assert restored.step == 1
    direct, _ = opt.apply(w1, D2, state)
    resumed, _ = opt.apply(w1, D2, restored)
    np.testing.assert_array_equal(direct, resumed)


def test_make_server_optimizer_passes_only_relevant_settings():
    assert make_server_optimizer("sgd", lr=2.0) == SGD(lr=2.0)
    assert make_server_optimizer("momentum", lr=1.0, momentum=0.5) == Momentum(lr=1.0, momentum=0.5)
    assert make_server_optimizer("adagrad", lr=1.0, beta1=0.5, tau=0.1) == FedAdagrad(
        lr=1.0, beta1=0.5, tau=0.1
    )
    assert make_server_optimizer("yogi", lr=1.0, beta2=0.5) == FedYogi(lr=1.0, beta2=0.5)
    assert make_server_optimizer("adam", lr=1.0) == FedAdam(lr=1.0, beta1=0.9, beta2=0.99, tau=1e-3)


@pytest.mark.parametrize(
    ("name", "settings", "param"),
    [
        ("nesterov", {}, "name"),
        ("sgd", {"lr": 0.0}, "lr"),
        ("momentum", {"momentum": 1.0}, "momentum"),
        ("adam", {"beta1": -0.1}, "beta1"),
        ("adam", {"beta2": 1.0}, "beta2"),
        ("yogi", {"tau": 0.0}, "tau"),
    ],
)
def test_bad_settings_raise(name, settings, param):
    settings = {"lr": 0.1, **settings}
    with pytest.raises(ValueError, match=param):
        make_server_optimizer(name, **settings)


def test_shape_mismatch_raises():
    opt = SGD(lr=1.0)
    with pytest.raises(ValueError, match="delta"):
        opt.apply(W0, np.ones(4), opt.init(W0))
