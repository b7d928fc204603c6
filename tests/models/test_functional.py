"""The functional client form (raysim/models/functional.py): FedProx and SCAFFOLD written in it
train as the built-in clients do, one by one and as a batch of models, within float32 rounding;
the objective is all that is minimised; states of a batch must agree in shape."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pytest
import torch
from torch import nn

from raysim.algorithms.sgd import SGDConfig
from raysim.models.algorithm import ClientSettings, LocalTask, SGDClient
from raysim.models.functional import Batch, Context, FedProx, FunctionalClient, Scaffold
from raysim.models.params import FlatModel
from raysim.models.spec import ModelSpec
from raysim.runtime.worker import ClientWorker
from raysim.sim.kernel.tasks import ClientIndices, TrainingPlan, TrainTask, group_tasks

SIZE = 7850  # the logistic regression on 28x28 images, 10 classes


def train_both_ways(algorithm, tasks: list[TrainTask], sgd: SGDConfig):
    """Each task's result from a worker running ``algorithm`` client by client and as one batch."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20 * len(tasks), 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=20 * len(tasks))
    shards = ClientIndices.from_parts([np.arange(i * 20, (i + 1) * 20) for i in range(len(tasks))])
    params = (rng.normal(size=SIZE) * 0.01).astype(np.float32)
    plan = TrainingPlan(batch_size=8, sgd=sgd, seed=1, algorithm=algorithm)
    worker = ClientWorker(model=ModelSpec("logreg", (1, 28, 28), 10), plan=plan, train_x=x, train_y=y, shards=shards)
    results = []
    for vectorize in (False, True):
        groups = group_tasks(tasks, [40.0] * len(tasks), vectorize=vectorize)
        assert len(groups) == (1 if vectorize else len(tasks))
        results.append(worker.train(params, groups))
    return results


def assert_same(one, other, *, state: str | None = None):
    for a, b in zip(one, other):
        assert (a.client_id, a.steps, a.num_samples) == (b.client_id, b.steps, b.num_samples)
        np.testing.assert_allclose(a.delta, b.delta, rtol=1e-5, atol=1e-6)
        assert a.mean_loss == pytest.approx(b.mean_loss, rel=1e-5)
        if state:
            assert a.state[state].dtype == b.state[state].dtype
            np.testing.assert_allclose(a.state[state], b.state[state], rtol=1e-5, atol=1e-4)


def test_fedprox_in_functional_form_trains_as_the_builtin_client_with_mu():
    tasks = [TrainTask(i, i, 3, 2) for i in range(4)]
    sgd = SGDConfig(lr=0.1, momentum=0.5, weight_decay=0.01)
    builtin = train_both_ways("sgd", tasks, replace(sgd, proximal_mu=0.3))
    functional = train_both_ways(FedProx(mu=0.3), tasks, sgd)
    for results in (*builtin, *functional):  # one by one and batched, built-in and functional
        assert_same(builtin[0], results)
    assert all(r.state is None for r in functional[0])
    plain = train_both_ways("sgd", tasks, sgd)[0]
    assert not np.allclose(plain[0].delta, functional[0][0].delta, atol=1e-5)  # the term acts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaffold_in_functional_form_trains_and_updates_its_control_as_the_builtin_client(dtype):
    """Controls in the model's dtype (float32, as ScaffoldServer broadcasts them for a float32
    model) stay float32 on both paths; float64 controls, if an algorithm passes them, stay float64."""
    # c - c_i: a server control of 0.02 everywhere, minus -0.01 i for odd clients, 0 for even ones (none yet)
    tasks = [TrainTask(i, i, 3, 2, server={"control": np.full(SIZE, 0.02, dtype=dtype)},
                       state={"control": np.full(SIZE, -0.01 * i, dtype=dtype)} if i % 2 else {}) for i in range(6)]
    builtin = train_both_ways("scaffold", tasks, SGDConfig(lr=0.1))
    functional = train_both_ways(Scaffold(), tasks, SGDConfig(lr=0.1))
    for results in (*builtin, *functional):
        assert_same(builtin[0], results, state="control")
    assert {r.state["control"].dtype for results in (*builtin, *functional) for r in results} == {np.dtype(dtype)}


def task_on(module: Callable[[], nn.Module], *, sgd: SGDConfig) -> LocalTask:
    torch.manual_seed(0)
    flat = FlatModel(module())
    x, y = torch.randn(24, 4), torch.randint(0, 3, (24,))
    return LocalTask(model=flat.module, flat=flat, x=x, y=y, start=flat.flat.detach().clone(), state={},
                     server={}, client_id=0, round=1, generator=torch.Generator().manual_seed(5),
                     settings=ClientSettings(epochs=2, batch_size=8, sgd=sgd))


def linear() -> nn.Module:
    return nn.Linear(4, 3)


def batch_norm_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def test_a_model_with_buffers_trains_client_by_client_with_its_statistics_moving():
    sgd = SGDConfig(lr=0.1, momentum=0.9)
    builtin_task = task_on(batch_norm_model, sgd=replace(sgd, proximal_mu=0.5))
    functional_task = task_on(batch_norm_model, sgd=sgd)
    builtin = SGDClient().train(builtin_task)
    functional = FedProx(mu=0.5).train(functional_task)
    np.testing.assert_allclose(functional.delta, builtin.delta, rtol=1e-5, atol=1e-6)
    trainable = functional_task.flat.layout.num_trainable
    assert np.abs(functional.delta[trainable:]).max() > 0  # the running statistics moved
    torch.testing.assert_close(functional_task.flat.flat, builtin_task.flat.flat)


def test_the_objective_is_all_that_is_minimised():
    """client.proximal_mu is the built-in client's: a functional client's steps are its objective's."""
    sgd = SGDConfig(lr=0.1, proximal_mu=5.0)
    plain = SGDClient().train(task_on(linear, sgd=replace(sgd, proximal_mu=0.0)))
    functional = FunctionalClient().train(task_on(linear, sgd=sgd))
    np.testing.assert_array_equal(functional.delta, plain.delta)
    assert functional.loss == plain.loss and functional.state is None


class Counting(FunctionalClient):
    """Pulls towards its state ``target``, which it moves to where it ended: a state of its own shape."""

    def __init__(self, size: int = 15):
        self.size = size

    def objective(self, params: torch.Tensor, batch: Batch, context: Context) -> torch.Tensor:
        return batch.loss + (params - context.state["target"]).square().sum()

    def init_state(self, start: torch.Tensor, server) -> dict[str, torch.Tensor]:
        return {"target": torch.zeros(self.size)}

    def new_state(self, context: Context, delta: torch.Tensor, steps: int, lr: float):
        return {"target": context.start + delta}


def test_a_batch_refuses_states_of_other_shapes_naming_the_clients():
    tasks = [task_on(linear, sgd=SGDConfig(lr=0.1)) for _ in range(2)]
    tasks[1] = replace(tasks[1], client_id=7, state={"target": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"client 7's state \{'target': \(3,\)\} is not shaped as client 0's"):
        Counting().train_batch(tasks)
    (result,) = Counting().train_batch(tasks[:1])
    np.testing.assert_allclose(result.state["target"], (tasks[0].start + torch.as_tensor(result.delta)).numpy())
