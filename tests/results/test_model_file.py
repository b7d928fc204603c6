"""The trained model out (issue 35, item 1): every completed run writes ``model.safetensors``;
``raysim.results.load_model`` rebuilds it (a built-in model, or a user's class with consent) with
the test accuracy the run recorded for its last round, or gives the arrays; a crafted file is
refused naming the file, before anything is built."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from torch import nn

from raysim.api import run
from raysim.results import load, load_model
from raysim.results.model_file import MODEL_FILE
from raysim.results.results import ResultsError
from raysim.scenario.preparation import prepare


class UserLogreg(nn.Module):
    """A user's model class, named by the scenario as ``tests.results.test_model_file:UserLogreg``."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes))

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 3-round run of a built-in model and one of a user's class, each scored every round."""
    from raysim.scenario.sections import parse_scenario
    from tests.conftest import tiny_table

    root = tmp_path_factory.mktemp("models")
    made = {}
    for kind, model in (("builtin", "logreg"), ("user", "tests.results.test_model_file:UserLogreg")):
        scenario = parse_scenario(tiny_table(run={"rounds": 3, "name": f"model_{kind}"}, model={"name": model}))
        made[kind] = (scenario, run(scenario, results_root=root).run_dir)
    return made


def _accuracy(module: nn.Module, scenario) -> float:
    data = prepare(scenario).dataset
    with torch.no_grad():
        predicted = module(torch.as_tensor(data.test_x)).argmax(dim=1).numpy()
    return float((predicted == data.test_y).sum() / len(data.test_y))


@pytest.mark.parametrize("kind", ["builtin", "user"])
def test_the_rebuilt_model_scores_what_the_run_recorded(runs, kind):
    scenario, run_dir = runs[kind]
    assert (run_dir / MODEL_FILE).is_file()
    module = load_model(run_dir, trust_code=True)
    recorded = load(run_dir).rounds.test_accuracy.iloc[-1]
    assert _accuracy(module, scenario) == recorded


def test_the_arrays_come_by_parameter_name_without_building(runs):
    _, run_dir = runs["user"]
    arrays = load_model(run_dir, build=False)  # no trust needed: nothing is imported or built
    assert set(arrays) == {"body.1.weight", "body.1.bias"} and arrays["body.1.weight"].dtype == np.float32


def test_a_users_model_class_is_built_only_with_consent(runs):
    _, run_dir = runs["user"]
    with pytest.raises(ResultsError, match="trust_code=True"):
        load_model(run_dir)


def _safetensors(header: dict, payload: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


@pytest.mark.parametrize("content", [
    b"",
    b"not a model at all",
    struct.pack("<Q", 1 << 60) + b"{}",  # a header that claims an exabyte
    _safetensors({"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 1 << 42]}}),  # sizes that lie
    _safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 8),  # no metadata
    _safetensors({"__metadata__": {"model": "logreg", "input_shape": "[-1]", "num_classes": "2", "options": "{}",
                                   "round": "1"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                 b"\x00" * 8),  # a negative input shape
    _safetensors({"__metadata__": {"model": "logreg", "input_shape": "[2]", "num_classes": "2", "options": "{}",
                                   "round": "1"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                 np.array([np.nan, 1.0], dtype=np.float32).tobytes()),  # not finite
    _safetensors({"__metadata__": {"model": "logreg", "input_shape": "[2]", "num_classes": "2", "options": "{}",
                                   "round": "1"}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                 b"\x00" * 8),  # arrays that fit no logreg
], ids=["empty", "text", "huge-header", "lying-sizes", "no-metadata", "negative-shape", "nan", "wrong-arrays"])
def test_a_crafted_model_file_is_refused_naming_it(tmp_path, content):
    (tmp_path / MODEL_FILE).write_bytes(content)
    with pytest.raises(ResultsError, match=MODEL_FILE):
        load_model(tmp_path)
