"""MOON (examples/moon): the contrastive loss's direction, the client against plain SGD and its
state, the refusal of a model without layers to cut, and the scenario file run by the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from moon import MoonClient, contrastive_loss
from raysim.models.algorithm import SGDClient
from tests.examples.conftest import make_task, run_example


def test_the_loss_is_larger_when_z_is_the_previous_models_than_when_it_is_the_global_ones():
    torch.manual_seed(0)
    z, other = torch.randn(16, 8), torch.randn(16, 8)
    near_global = contrastive_loss(z, z_glob=z, z_prev=other, tau=0.5)
    near_previous = contrastive_loss(z, z_glob=other, z_prev=z, tau=0.5)
    assert near_previous > near_global
    assert contrastive_loss(z, z, z, tau=0.5).item() == pytest.approx(math.log(2))


def test_without_the_contrastive_term_it_is_the_clients_sgd():
    moon, sgd = make_task(), make_task()
    MoonClient(mu=0.0).train(moon)
    SGDClient().train(sgd)
    torch.testing.assert_close(moon.flat.flat, sgd.flat.flat)


def test_first_round_keeps_the_trained_model_and_the_next_one_pulls_away_from_it():
    first = make_task()
    start = first.start.clone()
    result = MoonClient().train(first)
    assert result.metrics["contrastive_loss"] == pytest.approx(math.log(2))  # z_prev = z_glob the first time
    np.testing.assert_array_equal(result.state["previous"], first.flat.state())
    torch.testing.assert_close(first.start, start)  # the start weights are left as they were
    plain, contrasted = make_task(state=result.state), make_task(state=result.state)
    MoonClient(mu=0.0).train(plain)
    MoonClient(mu=5.0).train(contrasted)
    assert not torch.allclose(plain.flat.flat, contrasted.flat.flat)


def test_a_model_that_is_not_sequential_is_refused_clearly():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(TypeError, match=r"model\[:-1\].*nn.Sequential.*Net"):
        MoonClient().train(make_task(module=Net()))


def test_the_scenario_runs_from_the_cli(tmp_path):
    rounds, clients = run_example("moon", tmp_path / "results", "data.num_clients=20")
    assert rounds["round"].tolist() == [1, 2, 3]
    assert np.isfinite(rounds["test_accuracy"]).all() and rounds["test_accuracy"].iloc[-1] > 0.5
    assert len(clients) == 6 and np.isfinite(clients["metric_contrastive_loss"]).all()
