"""Models by name and the flat-parameter view the runtime relies on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from raysim.models.models import build_model, count_parameters
from raysim.models.params import FlatModel


@pytest.mark.parametrize(
    ("name", "shape", "expected"),
    [("logreg", (1, 28, 28), 7850), ("mlp2nn", (1, 28, 28), 199_210), ("cnn", (1, 28, 28), 1_663_370),
     ("resnet18", (3, 32, 32), 11_173_962)],
)
def test_parameter_counts_match_the_papers(name, shape, expected):
    assert count_parameters(build_model(name, input_shape=shape, num_classes=10)) == expected


class TwoLayer(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 4), nn.Linear(4, num_classes))

    def forward(self, x):
        return self.net(x)


def test_user_model_is_imported_by_module_path():
    model = build_model("tests.models.test_models:TwoLayer", input_shape=(60,), num_classes=10)
    assert isinstance(model, TwoLayer)


@pytest.mark.parametrize(
    ("name", "message"),
    [("transformer", "use one of"), ("no_such_pkg.mod:X", "cannot import module"),
     ("tests.models.test_models:Missing", "has no attribute 'Missing'")],
)
def test_bad_model_names_are_explained(name, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, input_shape=(60,), num_classes=10)


def test_flat_model_views_share_storage_with_the_module():
    flat = FlatModel(build_model("mlp2nn", input_shape=(1, 28, 28), num_classes=10))
    vector = np.arange(flat.layout.size, dtype=np.float32) / 1e6
    flat.load(vector)
    first = next(flat.module.parameters())
    assert torch.equal(first.detach().reshape(-1), torch.as_tensor(vector[: first.numel()]))
    np.testing.assert_array_equal(flat.state(), vector)


def test_gradients_accumulate_into_the_flat_gradient():
    flat = FlatModel(build_model("logreg", input_shape=(3,), num_classes=2))
    loss = flat.module(torch.ones(1, 3)).sum()
    loss.backward()
    # d/dW of sum(W x + b) is x for every output row, d/db is 1.
    np.testing.assert_allclose(flat.grad.numpy(), [1, 1, 1, 1, 1, 1, 1, 1])


def test_batchnorm_buffers_follow_the_parameters_in_the_state():
    flat = FlatModel(build_model("resnet18", input_shape=(3, 32, 32), num_classes=10))
    assert flat.layout.num_trainable == 11_173_962
    assert flat.layout.size > flat.layout.num_trainable
