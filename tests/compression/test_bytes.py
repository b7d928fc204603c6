"""Byte counts match the analytic formula for every layer of the FedAvg CNN and 2NN, and the
wire size is the payload plus the framing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysim.compression.config import CODECS
from raysim.compression.wire import pack
from raysim.models.models import initial_state
from raysim.models.spec import ModelSpec

CASES = [("fp32", {}), ("fp16", {}), ("bf16", {}), ("int", {"bits": 3}), ("qsgd", {"levels": 15}),
         ("topk", {"ratio": 0.01}), ("randk", {"ratio": 0.05}), ("mask", {"ratio": 0.05}), ("sign", {})]


def layer_bytes(name: str, n: int, options: dict) -> int:
    """The formula, written out independently of the codecs' own ``field_bytes``."""
    kept = max(1, math.ceil(options.get("ratio", 1) * n))
    index = 1 if n <= 256 else 2 if n <= 65536 else 4
    return {
        "fp32": 4 * n, "fp16": 2 * n, "bf16": 2 * n,
        "int": 4 + 2 + math.ceil(n * options.get("bits", 0) / 8),  # scale, zero point, n codes of k bits
        "qsgd": 4 + math.ceil(n * (1 + math.ceil(math.log2(options.get("levels", 1) + 1))) / 8),
        "topk": kept * (index + 4), "randk": kept * (index + 4),
        "mask": 4 * kept,  # values only: positions come from the 8-byte seed sent once
        "sign": 4 + math.ceil(n / 8),
    }[name]


@pytest.fixture(scope="module", params=["cnn", "mlp2nn"])
def layer_sizes(request):
    _, layout = initial_state(ModelSpec(request.param, (1, 28, 28), 10), seed=0)
    return layout.tensor_sizes


@pytest.mark.parametrize("name, options", CASES, ids=[c[0] for c in CASES])
def test_every_layer_costs_what_the_formula_says(layer_sizes, name, options):
    codec = CODECS[name](layer_sizes, **options)
    fields = codec.encode(np.random.default_rng(0).normal(size=sum(layer_sizes)), np.random.default_rng(1))
    header = 1 if name == "mask" else 0
    assert name != "mask" or fields[0].nbytes == 8
    per_layer = (len(fields) - header) // len(layer_sizes)
    for i, n in enumerate(layer_sizes):
        own = fields[header + i * per_layer: header + (i + 1) * per_layer]
        assert sum(f.nbytes for f in own) == layer_bytes(name, n, options), f"layer {i} ({n} entries)"
    payload = 8 * header + sum(layer_bytes(name, n, options) for n in layer_sizes)
    assert codec.payload_bytes == payload
    assert len(pack(fields)) == codec.wire_bytes == payload + 4 + 5 * len(fields)


def test_the_fedavg_cnn_has_the_papers_parameter_count(layer_sizes):
    assert sum(layer_sizes) in (1_663_370, 199_210)
