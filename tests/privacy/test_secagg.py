import numpy as np
import pytest

from raysim.privacy.ring import dequantize, expand_mask, quantize
from raysim.privacy.secagg import SecAggClient, SecAggError, neighbour_graph, run_secagg

P = 1000
R = 2**32


def _inputs(n, seed=0, bits=16):
    """Structured quantised updates: a smooth signal per client, so leaks would show."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 6.0, P)
    return {
        u: quantize(0.5 * np.sin(grid * (u + 1)) + 0.05 * rng.normal(size=P), 1.0, bits, rng=rng) for u in range(n)
    }


def _plain_sum(inputs, dropped=frozenset()):
    return sum(x for u, x in inputs.items() if u not in dropped) % np.uint64(R)


def _uniformity_stat(values):
    """Chi-square statistic of values mod R over 20 equal bins (df = 19)."""
    counts = np.bincount((values.astype(np.float64) * (20 / R)).astype(np.int64), minlength=20)
    expected = len(values) / 20
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("dropped", [set(), {3}, {0, 7}, {1, 2, 5}])
def test_full_graph_sum_exact(dropped):
    inputs = _inputs(8)
    result = run_secagg(inputs, threshold=5, dropped=dropped, seed=1)
    assert result.sum.dtype == np.uint64
    np.testing.assert_array_equal(result.sum, _plain_sum(inputs, dropped))
    assert result.survivors == frozenset(inputs) - dropped


@pytest.mark.parametrize("neighbours, dropped", [(4, set()), (4, {2}), (4, {0, 9}), (3, {5}), (3, {1, 6})])
def test_secagg_plus_sum_exact(neighbours, dropped):
    inputs = _inputs(10, seed=2)
    result = run_secagg(inputs, threshold=2, dropped=dropped, neighbours=neighbours, seed=3)
    np.testing.assert_array_equal(result.sum, _plain_sum(inputs, dropped))
    degrees = {len(vs) for vs in result.server_view.graph.values()}
    assert degrees == {neighbours}
    survivors = sorted(result.survivors)
    assert result.cost.client_prg_expansions[survivors[0]] == 1 + neighbours
    assert all(result.cost.client_prg_expansions[u] == 0 for u in dropped)


def test_sum_with_64_bit_ring_and_no_seed():
    rng = np.random.default_rng(4)
    inputs = {u: rng.integers(0, 2**63, size=P, dtype=np.uint64) for u in range(5)}
    result = run_secagg(inputs, threshold=3, dropped={4}, modulus_bits=64)
    np.testing.assert_array_equal(result.sum, sum(inputs[u] for u in range(4)))  # uint64 wraps mod 2**64


def test_too_few_survivors_raises():
    inputs = _inputs(6)
    with pytest.raises(SecAggError, match="fewer than threshold=4"):
        run_secagg(inputs, threshold=4, dropped={0, 1, 2}, seed=0)


def test_secagg_plus_neighbourhood_threshold_raises():
    inputs = _inputs(10)
    graph = run_secagg(inputs, threshold=2, neighbours=2, seed=5).server_view.graph  # same seed, same graph
    dropped = set(graph[0])  # both neighbours of survivor 0: its self-mask seed has 1 holder left
    with pytest.raises(SecAggError, match="surviving holders"):
        run_secagg(inputs, threshold=2, dropped=dropped, neighbours=2, seed=5)


def test_parameter_validation():
    inputs = _inputs(4)
    with pytest.raises(ValueError, match="threshold"):
        run_secagg(inputs, threshold=5, seed=0)
    with pytest.raises(ValueError, match="dropped"):
        run_secagg(inputs, threshold=2, dropped={9}, seed=0)
    with pytest.raises(ValueError, match="inputs"):
        run_secagg({0: np.zeros(3, dtype=np.uint64), 1: np.zeros(4, dtype=np.uint64)}, threshold=1, seed=0)
    with pytest.raises(ValueError, match="inputs"):
        run_secagg({0: np.full(3, R, dtype=np.uint64)}, threshold=1, seed=0)
    with pytest.raises(ValueError, match="neighbours"):
        run_secagg(inputs, threshold=2, neighbours=0, seed=0)
    with pytest.raises(ValueError, match="modulus_bits"):
        run_secagg(inputs, threshold=2, modulus_bits=65, seed=0)


def test_masked_vectors_hide_inputs():
    inputs = _inputs(8)
    view = run_secagg(inputs, threshold=5, dropped={6}, seed=7).server_view
    assert set(view.masked_inputs) == set(inputs) - {6}
    for u, y in view.masked_inputs.items():
        x = inputs[u]
        assert not np.array_equal(y, x)
        assert abs(np.corrcoef(y.astype(float), x.astype(float))[0, 1]) < 0.15
        assert _uniformity_stat(y) < 50  # chi2(19) 99.99th percentile ~ 49
        for v in inputs:  # y_u - x_v is uniform too: no single true input strips the mask
            residual = (y - inputs[v]) & np.uint64(R - 1)
            assert _uniformity_stat(residual) < 50
            assert abs(np.corrcoef(residual.astype(float), inputs[v].astype(float))[0, 1]) < 0.15


def test_partial_sums_of_masked_vectors_reveal_nothing():
    inputs = _inputs(6)
    view = run_secagg(inputs, threshold=4, seed=8).server_view
    survivors = sorted(view.masked_inputs)
    for left_out in survivors:  # every strict subset still carries uncancelled pairwise masks
        subset = [u for u in survivors if u != left_out]
        partial = sum(view.masked_inputs[u] for u in subset) & np.uint64(R - 1)
        truth = _plain_sum({u: inputs[u] for u in subset})
        assert _uniformity_stat(partial) < 50
        assert abs(np.corrcoef(partial.astype(float), truth.astype(float))[0, 1]) < 0.15


def test_server_view_holds_only_protocol_messages():
    inputs = _inputs(6)
    dropped = {2}
    result = run_secagg(inputs, threshold=3, dropped=dropped, seed=9)
    view = result.server_view
    assert set(view.public_keys) == set(inputs)
    assert all(len(k.channel) == 32 and len(k.mask) == 32 for k in view.public_keys.values())
    # the server gets self-mask shares only of survivors, key shares only of dropped clients
    assert set(view.self_mask_shares) == result.survivors
    assert set(view.mask_key_shares) == dropped
    # routed share ciphertexts are opaque: no plaintext share values appear in them
    share_bytes = {
        element.to_bytes(16, "big") for shares in view.self_mask_shares.values() for s in shares.values() for element in s
    }
    assert not any(chunk in message for message in view.share_ciphertexts.values() for chunk in share_bytes)


def test_client_refuses_to_reveal_both_shares():
    client = SecAggClient(0, rng=np.random.default_rng(0))
    with pytest.raises(SecAggError, match="both"):
        client.unmasking_shares({1, 2}, {2})


def test_cost_report():
    inputs = _inputs(5)
    result = run_secagg(inputs, threshold=3, dropped={4}, seed=10)
    cost = result.cost
    masked_bytes = P * 32 // 8
    assert cost.bytes_up[0] > masked_bytes + 64
    assert cost.bytes_up[4] < masked_bytes  # dropped: keys and share ciphertexts only
    assert cost.client_prg_expansions == {0: 5, 1: 5, 2: 5, 3: 5, 4: 0}
    assert cost.server_prg_expansions == 4 + 4  # 4 self masks + 4 survivor edges of the dropped client
    assert all(cost.bytes_down[u] > 0 for u in inputs)


def test_graph_is_regular_or_near_regular_and_seeded():
    for n, k in [(10, 4), (10, 3), (9, 3), (9, 2), (12, 5)]:
        graph = neighbour_graph(list(range(n)), k, np.random.default_rng(0))
        degrees = sorted(len(vs) for vs in graph.values())
        assert degrees[0] == k and degrees[-1] <= k + 1 and sum(d > k for d in degrees) <= 1
        assert all(u not in vs and all(u in graph[v] for v in vs) for u, vs in graph.items())
    assert neighbour_graph(list(range(8)), 3, np.random.default_rng(1)) == neighbour_graph(
        list(range(8)), 3, np.random.default_rng(1)
    )
    assert neighbour_graph([0, 1, 2], 5, np.random.default_rng(0)) == {0: {1, 2}, 1: {0, 2}, 2: {0, 1}}


def test_expand_mask_deterministic_and_uniform():
    seed = bytes(range(32))
    a, b = expand_mask(seed, 20_000), expand_mask(seed, 20_000)
    np.testing.assert_array_equal(a, b)
    assert a.max() < R and _uniformity_stat(a) < 50
    assert not np.array_equal(a, expand_mask(bytes(32), 20_000))


def test_quantize_roundtrip_sum_and_unbiased():
    rng = np.random.default_rng(11)
    n, c, bits = 6, 0.5, 16
    updates = [rng.uniform(-0.7, 0.7, size=P) for _ in range(n)]
    quantised = [quantize(u, c, bits, rng=rng) for u in updates]
    assert all(q.dtype == np.uint64 and q.max() <= 2**bits - 1 for q in quantised)
    ring_sum = sum(quantised) % np.uint64(R)
    individually = sum(dequantize(q, 1, c, bits) for q in quantised)
    np.testing.assert_allclose(dequantize(ring_sum, n, c, bits), individually, atol=1e-9)
    step = 2 * c / (2**bits - 1)
    np.testing.assert_allclose(individually, sum(np.clip(u, -c, c) for u in updates), atol=n * step)
    # stochastic rounding is unbiased: averaging many roundings of one value recovers it
    x = np.full(100_000, 0.123456789)
    assert dequantize(quantize(x, c, 4, rng=rng), 1, c, 4).mean() == pytest.approx(0.123456789, abs=1e-3)


def test_quantize_validation():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="clip_range"):
        quantize(np.zeros(3), 0.0, 8, rng=rng)
    with pytest.raises(ValueError, match="bits"):
        quantize(np.zeros(3), 1.0, 0, rng=rng)
    with pytest.raises(ValueError, match="overflow"):
        dequantize(np.zeros(3, dtype=np.uint64), 4, 1.0, 31, modulus_bits=32)


def test_sum_fits_is_the_boundary_where_the_ring_sum_would_wrap():
    from raysim.privacy.ring import sum_fits

    assert sum_fits(256, 24)  # 256 * (2**24 - 1) < 2**32
    assert not sum_fits(257, 24)
    assert sum_fits(1, 31) and not sum_fits(2, 32)
