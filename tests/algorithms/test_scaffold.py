"""SCAFFOLD's control-variate math on a quadratic problem with exact gradients."""

from __future__ import annotations

import numpy as np
import pytest

from raysim.algorithms.scaffold import ScaffoldServer, client_control_delta, correction, server_control_update
from raysim.algorithms.server_opt import make_server_optimizer
from raysim.algorithms.strategy import Strategy, Update

# Client i minimises f_i(y) = 0.5 * a_i * (y - b_i)^2 (one coordinate); the global optimum of
# sum_i f_i is sum a_i b_i / sum a_i. Heterogeneous curvatures make FedAvg with many local
# steps drift towards the unweighted mean of the b_i.
A = np.array([1.0, 10.0])
B = np.array([0.0, 1.0])
OPTIMUM = float((A * B).sum() / A.sum())


def _local(x, i, steps, lr, corr):
    y = x
    for _ in range(steps):
        y = y - lr * (A[i] * (y - B[i]) + corr)
    return y - x


def _run(rounds, steps, lr, scaffold):
    x, c = np.zeros(1), np.zeros(1)
    controls = [np.zeros(1) for _ in A]
    for _ in range(rounds):
        deltas, dcs = [], []
        for i in range(len(A)):
            corr = correction(c, controls[i]) if scaffold else 0.0
            delta = _local(x, i, steps, lr, corr)
            if scaffold:
                dc = client_control_delta(server_control=c, delta=delta, steps=steps, lr=lr)
                controls[i] = controls[i] + dc
                dcs.append(dc)
            deltas.append(delta)
        x = x + np.mean(deltas, axis=0)
        if scaffold:
            c = server_control_update(c, dcs, [1 / len(A)] * len(A))
    return float(x[0])


def test_scaffold_reaches_the_global_optimum_where_fedavg_drifts():
    fedavg = _run(rounds=200, steps=50, lr=0.05, scaffold=False)
    scaffold = _run(rounds=200, steps=50, lr=0.05, scaffold=True)
    assert abs(scaffold - OPTIMUM) < 1e-6
    assert abs(fedavg - OPTIMUM) > 0.1


def test_control_delta_matches_option_two_by_hand():
    # c = 0.5, K = 4 steps of lr 0.25 moved the model by dy = -2: dc = -0.5 + 2 / 1 = 1.5
    np.testing.assert_allclose(client_control_delta(server_control=np.array([0.5]), delta=np.array([-2.0]),
                                                    steps=4, lr=0.25), [1.5])


def test_server_control_divides_by_the_whole_population():
    np.testing.assert_allclose(server_control_update(np.array([1.0]), [np.array([2.0]), np.array([4.0])], [0.1, 0.1]),
                               [1.6])


# Three clients with sample counts N_I; the sample-weighted objective sum n_i f_i has its optimum
# at sum n_i a_i b_i / sum n_i a_i, the unweighted one at sum a_i b_i / sum a_i.
N_I = np.array([1000.0, 100.0, 10.0])
A3, B3 = np.array([1.0, 2.0, 4.0]), np.array([3.0, -1.0, 0.5])


def _weighted_scaffold(shares, rounds=400, steps=20, lr=0.05):
    """SCAFFOLD with full participation and sample-weighted model updates, through SCAFFOLD's
    server (``ScaffoldServer``) around FedAvg; ``shares`` weight dc."""
    server = ScaffoldServer(inner=Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0)), shares=shares,
                            lr=lr, trainable=1)
    x, controls = np.zeros(1), {}
    state = server.init(x)
    for _ in range(rounds):
        c, updates = server.broadcast(state)["control"], []
        for i in range(3):
            y, corr = x.copy(), correction(c, controls.get(i, np.zeros(1)))
            for _ in range(steps):
                y = y - lr * (A3[i] * (y - B3[i]) + corr)
            controls[i] = controls.get(i, 0.0) + client_control_delta(server_control=c, delta=y - x, steps=steps, lr=lr)
            updates.append(Update(i, int(N_I[i]), steps, y - x))
        x, state, _ = server.aggregate(x, state, updates)
    return float(x[0])


def test_scaffold_with_sample_weights_reaches_the_weighted_optimum():
    weighted = float((N_I * A3 * B3).sum() / (N_I * A3).sum())
    unweighted = float((A3 * B3).sum() / A3.sum())
    assert abs(weighted - unweighted) > 0.5
    assert _weighted_scaffold(shares=N_I / N_I.sum()) == pytest.approx(weighted, abs=1e-8)
    # the paper's 1/N control update would land on the unweighted optimum instead
    assert _weighted_scaffold(shares=np.full(3, 1 / 3)) == pytest.approx(unweighted, abs=1e-8)


def test_scaffold_server_control_is_the_share_weighted_sum_of_client_controls():
    """c = sum_i s_i c_i at every step, whichever clients report, when each client's c_i moves by
    the dc_i of its update (``ScaffoldClient``) and the server's c by sum s_i dc_i of the same
    updates (``ScaffoldServer``)."""
    sizes, lr = np.array([100, 200, 300, 400]), 0.1
    server = ScaffoldServer(inner=Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0)),
                            shares=sizes / sizes.sum(), lr=lr, trainable=3)
    params, draw, controls = np.zeros(3), np.random.default_rng(0), np.zeros((4, 3))
    state = server.init(params)
    for _ in range(5):
        c, updates = server.broadcast(state)["control"], []
        for client in draw.choice(4, size=3, replace=False):
            delta, steps = draw.normal(size=3), int(draw.integers(1, 5))
            controls[client] += client_control_delta(server_control=c, delta=delta, steps=steps, lr=lr)
            updates.append(Update(int(client), int(sizes[client]), steps, delta))
        params, state, _ = server.aggregate(params, state, updates)
        np.testing.assert_allclose(state.control, (sizes / sizes.sum()) @ controls, atol=1e-12)


def test_controls_are_kept_in_the_models_dtype():
    """A float32 model's controls are float32 on the server and the client (half of float64's
    memory, store and traffic), however the server receives the update (a codec decodes float64)."""
    sizes, lr = np.array([1, 3]), 0.1
    server = ScaffoldServer(inner=Strategy(server_optimizer=make_server_optimizer("sgd", lr=1.0)),
                            shares=sizes / sizes.sum(), lr=lr, trainable=3)
    params = np.zeros(4, dtype=np.float32)
    state = server.init(params)
    c = server.broadcast(state)["control"]
    assert c.dtype == np.float32
    delta = np.array([0.5, -1.0, 2.0, 9.0], dtype=np.float32)
    dc = client_control_delta(server_control=c, delta=delta, steps=5, lr=lr)
    assert dc.dtype == np.float32 and correction(c, dc).dtype == np.float32
    updates = [Update(0, 1, 5, delta), Update(1, 3, 5, delta.astype(np.float64))]
    params, state, _ = server.aggregate(params, state, updates)
    assert params.dtype == np.float32 and state.control.dtype == np.float32
    np.testing.assert_allclose(state.control, [-1.0, 2.0, -4.0, 0.0], rtol=1e-6)  # 1/4 + 3/4 of -dy / 0.5
