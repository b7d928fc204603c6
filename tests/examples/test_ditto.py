"""Ditto (examples/ditto): the held-out split, the global update against plain SGD on the
training part, the personal model and its state, and the scenario file run by the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ditto import DittoClient, split
from raysim.models.algorithm import SGDClient
from raysim.results import load_model
from tests.examples.conftest import make_task, run_example


def test_the_split_is_the_clients_own_and_the_same_every_time():
    train, held = split(50, client_id=3, held_out=0.2)
    assert len(train) == 40 and len(held) == 10
    assert sorted(torch.cat([train, held]).tolist()) == list(range(50))
    again, held_again = split(50, client_id=3, held_out=0.2)
    assert torch.equal(train, again) and torch.equal(held, held_again)
    assert not torch.equal(held, split(50, client_id=4, held_out=0.2)[1])


def test_the_update_sent_is_sgd_on_the_training_part_and_the_personal_model_is_kept():
    task = make_task(n=50, client_id=3)
    result = DittoClient(lam=0.1).train(task)
    train, held = split(50, client_id=3, held_out=0.2)
    plain = make_task(n=50, client_id=3)
    plain.x, plain.y = plain.x[train], plain.y[train]
    expected = SGDClient().train(plain)
    np.testing.assert_allclose(result.delta, expected.delta, rtol=1e-6, atol=1e-7)
    personal = result.state["personal"]
    assert personal.shape == task.start.shape and personal.dtype == np.float32
    assert not np.allclose(personal, task.start.numpy() + result.delta, atol=1e-4)  # v_i is not w
    assert result.metrics["held_out"] == 10
    assert 0 <= result.metrics["personal_accuracy"] <= 1
    with torch.no_grad():  # the global accuracy is the received model's, before training
        task.flat.load(task.start)
        received = (task.model(task.x[held]).argmax(1) == task.y[held]).float().mean().item()
    assert result.metrics["global_accuracy"] == pytest.approx(received)


def test_the_personal_model_continues_from_the_clients_state():
    kept = np.random.default_rng(0).normal(size=make_task().start.numel()).astype(np.float32)
    result = DittoClient(lam=1.0).train(make_task(state={"personal": kept}, lr=1e-9))
    np.testing.assert_allclose(result.state["personal"], kept, atol=1e-6)


def test_the_scenario_runs_from_the_cli(tmp_path):
    rounds, clients = run_example("ditto", tmp_path / "results", "data.num_clients=20")
    assert rounds["round"].tolist() == [1, 2, 3]
    assert np.isfinite(rounds["test_accuracy"]).all()
    assert len(clients) == 6
    for name in ("personal_accuracy", "global_accuracy"):
        assert clients[f"metric_{name}"].between(0, 1).all()
    assert (clients["metric_held_out"] == (clients["samples"] * 0.2).astype(int)).all()
    (run_dir,) = (tmp_path / "results" / "fmnist_ditto").iterdir()  # each client's personal model is a result
    kept = sorted(int(p.stem.removeprefix("client-")) for p in (run_dir / "clients").iterdir())
    assert kept == sorted(set(clients["client_id"]))
    personal, glob = load_model(run_dir, client=kept[0], build=False), load_model(run_dir, build=False)
    assert list(personal) == list(glob) and not np.array_equal(personal["1.weight"], glob["1.weight"])
