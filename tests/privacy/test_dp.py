import numpy as np
import pytest

from raysim.privacy.dp import (
    AdaptiveClipState,
    adaptive_clip_update,
    adaptive_noise_multiplier,
    clip_to_norm,
    dp_average,
    gaussian_noise_std,
    local_noise,
    noisy_unclipped_fraction,
)


def test_clip_below_norm_is_unchanged_copy():
    delta = np.array([3.0, 4.0])
    clipped, was_clipped, norm = clip_to_norm(delta, 10.0)
    assert not was_clipped and norm == pytest.approx(5.0)
    np.testing.assert_array_equal(clipped, delta)
    assert clipped is not delta


def test_clip_above_norm_scales_to_clip_norm():
    delta = np.array([3.0, 4.0])
    clipped, was_clipped, norm = clip_to_norm(delta, 1.0)
    assert was_clipped and norm == pytest.approx(5.0)
    assert np.linalg.norm(clipped) == pytest.approx(1.0)
    np.testing.assert_allclose(clipped, delta / 5.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_clip_norm_validated(bad):
    with pytest.raises(ValueError, match="clip_norm"):
        clip_to_norm(np.ones(3), bad)


def test_noise_std_formula():
    assert gaussian_noise_std(1.2, 0.5, 10.0) == pytest.approx(0.06)
    assert gaussian_noise_std(1.2, 0.5) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="denominator"):
        gaussian_noise_std(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="noise_multiplier"):
        gaussian_noise_std(-1.0, 1.0, 1.0)


def test_dp_average_noise_std_empirical():
    rng = np.random.default_rng(0)
    clipped_sum = np.full(200_000, 3.0)
    noisy = dp_average(clipped_sum, clip_norm=0.5, noise_multiplier=1.1, denominator=20.0, rng=rng)
    assert np.mean(noisy) == pytest.approx(3.0 / 20.0, abs=1e-3)
    assert np.std(noisy) == pytest.approx(gaussian_noise_std(1.1, 0.5, 20.0), rel=0.01)


def test_local_noise_std_empirical_and_deterministic_given_rng():
    clipped = np.zeros(200_000)
    noisy = local_noise(clipped, clip_norm=2.0, noise_multiplier=0.7, rng=np.random.default_rng(1))
    assert np.std(noisy) == pytest.approx(1.4, rel=0.01)
    again = local_noise(clipped, clip_norm=2.0, noise_multiplier=0.7, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(noisy, again)


def test_adaptive_clipping_converges_to_median_without_noise():
    rng = np.random.default_rng(2)
    norms = np.exp(rng.normal(0.0, 1.0, size=101))  # median ~ 1, far from C0 = 0.1
    state = AdaptiveClipState()
    assert state.clip_norm == 0.1 and state.target_quantile == 0.5 and state.learning_rate == 0.2
    for _ in range(500):
        b = noisy_unclipped_fraction(norms, state.clip_norm, len(norms), rng, count_std=0.0)
        state = adaptive_clip_update(state, b)
    lo, hi = np.quantile(norms, [0.45, 0.55])
    assert lo <= state.clip_norm <= hi


def test_adaptive_clipping_tracks_other_quantile_with_default_noise():
    rng = np.random.default_rng(3)
    norms = np.linspace(0.1, 10.0, 1000)
    state = AdaptiveClipState(clip_norm=1.0, target_quantile=0.8)
    history = []
    for _ in range(600):
        b = noisy_unclipped_fraction(norms, state.clip_norm, len(norms), rng)
        state = adaptive_clip_update(state, b)
        history.append(state.clip_norm)
    assert np.mean(history[-200:]) == pytest.approx(np.quantile(norms, 0.8), rel=0.1)


def test_adaptive_update_direction():
    state = AdaptiveClipState(clip_norm=1.0)
    assert adaptive_clip_update(state, 0.9).clip_norm < 1.0  # too many unclipped -> shrink
    assert adaptive_clip_update(state, 0.1).clip_norm > 1.0
    assert adaptive_clip_update(state, 0.5).clip_norm == pytest.approx(1.0)
    assert adaptive_clip_update(state, 0.9).clip_norm == pytest.approx(np.exp(-0.2 * 0.4))


def test_noisy_fraction_default_noise_is_expected_over_20():
    rng = np.random.default_rng(4)
    draws = [noisy_unclipped_fraction(np.ones(100), 2.0, 100, rng) for _ in range(20_000)]
    assert np.mean(draws) == pytest.approx(1.0, abs=0.01)
    assert np.std(draws) == pytest.approx(1.0 / 20, rel=0.03)


def test_adaptive_state_validation():
    with pytest.raises(ValueError, match="target_quantile"):
        AdaptiveClipState(target_quantile=1.5)
    with pytest.raises(ValueError, match="learning_rate"):
        AdaptiveClipState(learning_rate=0.0)
    with pytest.raises(ValueError, match="clip_norm"):
        AdaptiveClipState(clip_norm=-0.1)


def test_adaptive_noise_multiplier_composes_back():
    z, sigma_b = 1.0, 5.0
    z_delta = adaptive_noise_multiplier(z, sigma_b)
    assert z_delta > z
    assert (z_delta**-2 + (2 * sigma_b) ** -2) ** -0.5 == pytest.approx(z)
    with pytest.raises(ValueError, match="count_std"):
        adaptive_noise_multiplier(1.0, 0.4)


def test_adaptive_noise_multiplier_refuses_a_count_noise_at_or_below_half_of_z():
    """(2 sigma_b)^-2 must stay below z^-2, i.e. sigma_b > z / 2: the message says so."""
    import pytest

    from raysim.privacy.dp import adaptive_noise_multiplier

    assert adaptive_noise_multiplier(1.0, 0.51) > 1.0
    with pytest.raises(ValueError, match=r"count_std must be > noise_multiplier / 2 = 1"):
        adaptive_noise_multiplier(2.0, 1.0)
