"""The client actor builds the run's initial model for the process that starts the run, raises a
worker's build error as itself, and trains batches of models without loading torch._dynamo."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import ray

from raysim.algorithms.sgd import SGDConfig
from raysim.inputs import ConfigError
from raysim.models.models import initial_state
from raysim.models.spec import ModelSpec
from raysim.runtime.ray_executor import start_workers
from raysim.sim.kernel.tasks import ClientIndices, TrainingPlan, TrainTask, group_tasks


def _actor(model: ModelSpec):
    rng = np.random.default_rng(0)
    kwargs = dict(model=model, plan=TrainingPlan(batch_size=5, sgd=SGDConfig(lr=0.1), seed=0),
                  train_x=rng.normal(size=(40, 4)).astype(np.float32), train_y=rng.integers(0, 2, 40),
                  shards=ClientIndices.from_parts([np.arange(i * 10, (i + 1) * 10) for i in range(4)]))
    (actor,) = start_workers(num_actors=1, num_cpus=1, num_gpus=0, worker_kwargs=kwargs)
    return actor


def test_the_initial_model_comes_from_the_actor_and_batched_training_needs_no_dynamo(ray_runtime):
    model = ModelSpec("logreg", (4,), 2)
    actor = _actor(model)
    params, layout = ray.get(actor.initial_state.remote(7))
    expected, expected_layout = initial_state(model, 7)
    np.testing.assert_array_equal(params, expected)
    assert layout == expected_layout
    tasks = [TrainTask(i, i, 1, 1) for i in range(4)]
    (group,) = group_tasks(tasks, [10.0] * 4, vectorize=True)
    results = ray.get(actor.train.remote(params, [group]))
    assert [r.client_id for r in results] == [0, 1, 2, 3] and all(r.steps == 2 for r in results)
    heavy = ("torch._dynamo", "sympy", "triton")
    loaded = ray.get(actor.__ray_call__.remote(lambda _self: [name for name in heavy if name in sys.modules]))
    assert loaded == []  # torch.func's transforms ran without dynamo (models/functorch_without_dynamo.py)
    ray.kill(actor)


def test_a_model_that_cannot_be_built_raises_its_own_error_from_the_actor(ray_runtime):
    actor = _actor(ModelSpec("no_such_model", (4,), 2))
    with pytest.raises(ray.exceptions.RayTaskError) as raised:
        ray.get(actor.initial_state.remote(0))
    assert isinstance(raised.value.cause, ConfigError) and "model.name 'no_such_model' is unknown" in str(raised.value)
    with pytest.raises(ray.exceptions.RayTaskError) as raised:
        ray.get(actor.node_id.remote())  # alive, and each call says why it cannot work
    assert isinstance(raised.value.cause, ConfigError)
    ray.kill(actor)
