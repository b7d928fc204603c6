"""raysim's upload bytes next to FLSim's published channel-tutorial counts, for the tutorial's
model (CIFAR-10 ``SimpleConvNet(3, 10)``, shared/reference/compression.md), so that ratios
quoted from papers and from FLSim can be compared with raysim's. The README's table is this
module's ``table()``, checked verbatim; FLSim's figures are checked against its own counting
rules, so the differences the table explains are the rules', not typos."""

from __future__ import annotations

from pathlib import Path

import pytest

from raysim.compression.config import CODECS

README = Path(__file__).resolve().parents[2] / "README.md"

# conv1 (w, b), conv2-4 (w, b), the shared GroupNorm (w, b), fc (w, b): Conv2d(in, 32, 3) x 4,
# GroupNorm(32, 32), Linear(288, 10) (flsim/utils/example_utils.py@7311f2db)
SIZES = (3 * 32 * 9, 32, *(32 * 32 * 9, 32) * 3, 32, 32, 288 * 10, 10)
NDIM = (4, 1, *(4, 1) * 3, 1, 1, 2, 1)  # FLSim treats ndim > 1 and 1-D tensors apart

# channel, FLSim's published client -> server bytes, raysim's [compression] and its options
ROWS = [
    ("none (fp32)", 126_376, "fp32", {}),  # counted as an uncompressed run is (uplink = "none")
    ("half precision", 63_188, "fp16", {}),
    ("scalar quantization, 3 bits, per tensor", 12_640, "int", {"bits": 3}),
    ("top-k, 99% zeros, bitmask", 5_245.25, "topk", {"ratio": 0.01}),
    ("top-k, 99% zeros, COO", 11_032, "topk", {"ratio": 0.01}),
]


def flsim_bytes(channel: str) -> float:
    """FLSim's analytic count (flsim/channels/*.py@7311f2db): nse = numel - int(0.99 numel)."""
    nse = [n - int(0.99 * n) for n in SIZES]
    return {
        "none (fp32)": 4 * sum(SIZES),
        "half precision": 2 * sum(SIZES),
        # ndim > 1: 3-bit codes + fp64 scale + int32 zero point; 1-D tensors stay fp32
        "scalar quantization, 3 bits, per tensor": sum(n * 3 / 8 + 12 if d > 1 else 4 * n for n, d in zip(SIZES, NDIM)),
        "top-k, 99% zeros, bitmask": sum(n / 8 + 4 * k for n, k in zip(SIZES, nse)),
        "top-k, 99% zeros, COO": sum(k * (8 * d + 4) for k, d in zip(nse, NDIM)),
    }[channel]


def raysim_codec(uplink: str, options: dict):
    return CODECS[uplink](SIZES, **options)


def table() -> str:
    lines = ["| FLSim channel | FLSim bytes | raysim `[compression]` | raysim bytes | raysim / FLSim | "
             "raysim framed (checked, not counted) |",
             "|---|---:|---|---:|---:|---:|"]
    for channel, published, uplink, options in ROWS:
        codec = raysim_codec(uplink, options)
        setting = ", ".join([f'uplink = "{uplink}"', *(f"{k} = {v}" for k, v in options.items())])
        lines.append(f"| {channel} | {published:,} | {setting} | {codec.payload_bytes:,} | "
                     f"{codec.payload_bytes / published:.3f} | {codec.wire_bytes:,} |")
    return "\n".join(lines)


def test_the_tutorial_model_has_flsims_parameter_count():
    assert sum(SIZES) == 31_594 and len(SIZES) == 12


@pytest.mark.parametrize("channel, published", [(row[0], row[1]) for row in ROWS])
def test_flsims_published_counts_follow_its_own_rules(channel, published):
    assert flsim_bytes(channel) == published


def test_dense_and_half_precision_count_the_same_bytes_as_flsim():
    for channel, published, uplink, options in ROWS[:2]:
        assert raysim_codec(uplink, options).payload_bytes == published


def test_the_readme_table_is_what_raysim_computes():
    text = README.read_text()
    start = text.index("| FLSim channel |")
    found = text[start:].split("\n\n", 1)[0].strip()
    assert found == table(), f"README's FLSim table is stale; it should read:\n{table()}"
