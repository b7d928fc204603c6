"""The codecs' defining properties, on random vectors: lossless round trips, error bounds,
unbiasedness, top-k by magnitude, error feedback's telescoping identity, seeded payloads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from raysim.compression import feedback
from raysim.compression.codec import kept
from raysim.compression.config import CODECS, CompressionConfig
from raysim.compression.wire import pack, pack_bits, unpack, unpack_bits
from raysim.inputs import ConfigError

SIZES = (7, 300, 1, 33)
OPTIONS = {"int": {"bits": 4}, "qsgd": {"levels": 3}, "topk": {"ratio": 0.1}, "randk": {"ratio": 0.25},
           "mask": {"ratio": 0.25}}


def codec(name: str, sizes=SIZES, **options):
    return CODECS[name](sizes, **(options or OPTIONS.get(name, {})))


def roundtrip(c, v, seed=0):
    return c.decode(unpack(pack(c.encode(v, np.random.default_rng(seed)))))


finite = arrays(np.float32, sum(SIZES), elements=st.floats(-1e4, 1e4, width=32))


@settings(max_examples=40, deadline=None)
@given(finite)
def test_fp32_is_lossless_bit_for_bit(v):
    assert np.array_equal(roundtrip(codec("fp32"), v).astype(np.float32), v)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, sum(SIZES), elements=st.floats(2.0 ** -14, 6e4, width=32)), st.booleans())
def test_half_precision_error_is_within_unit_roundoff(v, negative):
    v = -v if negative else v
    assert np.all(np.abs(roundtrip(codec("fp16"), v) - v) <= 2.0 ** -11 * np.abs(v))
    assert np.all(np.abs(roundtrip(codec("bf16"), v) - v) <= 2.0 ** -8 * np.abs(v))


@settings(max_examples=40, deadline=None)
@given(finite, st.integers(1, 16))
def test_int_k_error_is_at_most_half_a_step_per_tensor(v, bits):
    """The step spans the tensor's range widened to hold 0 (PyTorch's MinMax observers)."""
    c = codec("int", bits=bits)
    out = roundtrip(c, v)
    for tensor, decoded in zip(c.tensors(v), np.split(out, c.bounds[1:-1])):
        step = (max(tensor.max(), 0) - min(tensor.min(), 0)) / (2 ** bits - 1)
        assert np.all(np.abs(decoded - tensor) <= step / 2 + 1e-6 * (np.abs(tensor).max() + 1))
        assert np.all(decoded[tensor == 0] == 0)


@pytest.mark.parametrize("bits", [1, 3, 4, 8])
@pytest.mark.parametrize("low, high", [(-1.0, 3.0), (0.5, 2.0), (-2.0, -0.1)])
def test_int_k_decodes_the_zeros_of_a_mostly_zero_tensor_exactly(bits, low, high):
    """A 90%-zero update (a sparse one) keeps its zeros: 0 is on the grid (integer zero point),
    where a grid from the minimum decoded each as about -0.038 (issue 24, finding 8)."""
    draw = np.random.default_rng(bits)
    v = draw.uniform(low, high, size=2000)
    v[draw.random(2000) < 0.9] = 0.0
    c = codec("int", sizes=(2000,), bits=bits)
    out = roundtrip(c, v)
    assert np.count_nonzero(v == 0) > 1700 and np.array_equal(out[v == 0], np.zeros(np.count_nonzero(v == 0)))
    step = (max(high, 0) - min(low, 0)) / (2 ** bits - 1)
    assert np.abs(out - v).max() <= step / 2 * (1 + 1e-6)
    assert roundtrip(c, np.zeros(2000)).tolist() == [0.0] * 2000


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 16), st.integers(0, 500), st.integers(0, 2 ** 31))
def test_bit_packing_round_trips(bits, count, seed):
    codes = np.random.default_rng(seed).integers(0, 2 ** bits, size=count)
    packed = pack_bits(codes, bits)
    assert packed.size == -(-count * bits // 8)
    assert np.array_equal(unpack_bits(packed, bits, count), codes)


@pytest.mark.parametrize("name", ["qsgd", "randk", "mask"])
def test_unbiased_codecs_average_to_the_input(name):
    """Mean over 10^4 seeded draws -> v, within 5 standard errors of each entry's variance."""
    v = np.random.default_rng(3).normal(size=sum(SIZES))
    c = codec(name)
    draws = 10_000
    total = np.zeros_like(v)
    for seed in range(draws):
        total += c.decode(c.encode(v, np.random.default_rng(seed)))
    variance = []
    for tensor in c.tensors(v):
        if name == "qsgd":  # entry i is ||v|| / s times a Bernoulli step: variance <= ||v||^2 / (4 s^2)
            variance.append(np.full(tensor.size, (tensor ** 2).sum() / (4 * 3 ** 2)))
        else:  # kept with probability k/d and scaled by d/k: variance v_i^2 (d/k - 1)
            variance.append(tensor ** 2 * (tensor.size / kept(tensor.size, 0.25) - 1))
    stderr = np.sqrt(np.concatenate(variance) / draws)
    assert np.all(np.abs(total / draws - v) <= 5 * stderr + 1e-6 * np.abs(v))  # + float32 rounding


def test_random_k_variance_matches_its_closed_form():
    v = np.random.default_rng(4).normal(size=300)
    c = codec("randk", sizes=(300,), ratio=0.1)
    errors = [((c.decode(c.encode(v, np.random.default_rng(s))) - v) ** 2).sum() for s in range(4000)]
    expected = (300 / 30 - 1) * (v ** 2).sum()
    assert np.mean(errors) == pytest.approx(expected, rel=0.03)


def test_top_k_keeps_the_largest_magnitudes_negative_ones_included():
    v = np.array([0.1, -5.0, 0.2, 3.0, -0.3, -4.0, 0.0, 1.0, 0.05, -0.01])
    out = codec("topk", sizes=(10,), ratio=0.3).decode(codec("topk", sizes=(10,), ratio=0.3).encode(v, None))
    assert np.array_equal(np.flatnonzero(out), [1, 3, 5])
    assert np.array_equal(out[[1, 3, 5]], [-5.0, 3.0, -4.0])


def test_scaled_sign_sends_the_mean_magnitude_and_maps_zero_to_plus():
    v = np.array([2.0, -1.0, 0.0, -3.0])
    assert np.array_equal(roundtrip(codec("sign", sizes=(4,)), v), [1.5, -1.5, 1.5, -1.5])


EF_CODECS = {"int": {}, "topk": {}, "sign": {}, "fp16": {}, "bf16": {}, "randk": {"ratio": 0.75},
             "mask": {"ratio": 0.75}, "qsgd": {"levels": 20}}  # unbiased ones where E||C(v) - v||^2 < ||v||^2


@pytest.mark.parametrize("name", sorted(EF_CODECS))
def test_error_feedback_loses_no_mass(name):
    """sum of what was sent + the final memory = sum of the updates (Stich et al. 2018)."""
    c = codec(name, **EF_CODECS[name])
    draw = np.random.default_rng(5)
    memory = np.zeros(sum(SIZES))
    sent_total = np.zeros(sum(SIZES))
    update_total = np.zeros(sum(SIZES))
    for step in range(50):
        delta = draw.normal(size=sum(SIZES)) * (1 + step % 3)
        fields, memory = feedback.encode(c, delta, memory, np.random.default_rng(step))
        sent_total += c.decode(unpack(pack(fields)))
        update_total += delta
    np.testing.assert_allclose(sent_total + memory, update_total, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_payload_bytes_are_fixed_by_the_layout_and_repeat_with_the_seed(name):
    c = codec(name)
    draw = np.random.default_rng(6)
    wires = [pack(c.encode(draw.normal(size=sum(SIZES)) * scale, np.random.default_rng(9))) for scale in (0, 1e-6, 1e3)]
    assert {len(w) for w in wires} == {c.wire_bytes}
    v = draw.normal(size=sum(SIZES))
    assert pack(c.encode(v, np.random.default_rng(11))) == pack(c.encode(v, np.random.default_rng(11)))


def memory_norms(name: str, steps: int = 60, **options) -> list[float]:
    """||e_t|| under error feedback for updates of unit scale."""
    c = codec(name, sizes=(400,), **options)
    draw = np.random.default_rng(12)
    memory, norms = np.zeros(400), []
    for step in range(steps):
        _, memory = feedback.encode(c, draw.normal(size=400), memory, np.random.default_rng(step))
        norms.append(float(np.linalg.norm(memory)))
    return norms


@pytest.mark.parametrize("name, options", [("randk", {"ratio": 0.75}), ("mask", {"ratio": 0.75}),
                                           ("qsgd", {"levels": 21})])
def test_error_feedback_is_allowed_with_an_unbiased_codec_that_contracts(name, options):
    """omega < 1 (random-k above half, QSGD with s^2 > d): the memory stays within
    sqrt(omega / (1 - sqrt(omega))^2) of an update's norm, as for a biased contractive codec."""
    channel = CompressionConfig(uplink=name, error_feedback=True, **options).channel((400,))
    assert channel.error_feedback and channel.uplink.variance_bound() < 1
    omega = channel.uplink.variance_bound()
    assert max(memory_norms(name, **options)) <= np.sqrt(omega) / (1 - np.sqrt(omega)) * np.sqrt(400) * 1.5


@pytest.mark.parametrize("name, options, key, omega", [
    ("randk", {"ratio": 0.1}, "set compression.ratio above 0.5", "9"),
    ("mask", {"ratio": 0.5}, "set compression.ratio above 0.5", "1"),
    ("qsgd", {"levels": 15}, "set compression.levels >= 21 (levels^2 above the largest tensor's 400 entries)", "1.33"),
])
def test_error_feedback_is_refused_where_the_memory_can_grow_and_says_why(name, options, key, omega):
    with pytest.raises(ConfigError) as refused:
        CompressionConfig(uplink=name, error_feedback=True, **options).channel((400, 7))
    message = str(refused.value)
    assert f"bound on this model is {omega} ||v||^2" in message and key in message
    assert "compression.error_feedback = false" in message and "\n" not in message
    if name == "randk":  # the reason holds: the memory blows up (a sent entry's becomes -9 times it)
        norms = memory_norms(name, steps=30, **options)
        assert norms[-1] > 1e6 * norms[0]


def test_channel_decodes_what_travelled_and_counts_its_bytes():
    channel = CompressionConfig(uplink="qsgd", levels=7).channel(SIZES)
    v = np.random.default_rng(8).normal(size=sum(SIZES))
    sent = channel.upload(v, None, np.random.default_rng(1))
    assert sent.wire_bytes == channel.uplink.wire_bytes > channel.uplink.payload_bytes
    assert np.array_equal(sent.delta, roundtrip(channel.uplink, v, seed=1))
    assert sent.memory is None


def test_only_a_bf16_run_imports_ml_dtypes():
    """Every ``raysim`` process imports the codecs (the scenario names them); ml_dtypes costs 0.65 s
    of CPU at import, so the bf16 codec imports it when it first casts, and still casts right."""
    import subprocess
    import sys

    script = ("import sys, numpy as np\n"
              "import raysim.scenario.sections, raysim.api\n"
              "assert 'ml_dtypes' not in sys.modules, 'imported by a run that names no bf16'\n"
              "from raysim.compression.config import CODECS\n"
              "print(CODECS['bf16'].__name__, 'ml_dtypes' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False"
    v = np.array([1.0, -3.140625, 2.0 ** -120, 65280.0, 2.0 ** 100], dtype=np.float32)  # each a bfloat16
    assert np.array_equal(roundtrip(codec("bf16", sizes=(5,)), v), v)
