"""Local training: FedSGD's gradient, FedProx's pull, reproducible batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from raysim.algorithms.sgd import SGDConfig
from raysim.models.models import build_model
from raysim.models.params import FlatModel
from raysim.models.training import train_locally


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = FlatModel(build_model("logreg", input_shape=(5,), num_classes=3))
    x = torch.randn(40, 5)
    y = torch.randint(0, 3, (40,))
    return model, x, y, model.flat.clone()


def test_full_batch_step_with_lr_one_returns_minus_the_gradient():
    model, x, y, base = _setup()
    out = train_locally(model, x, y, base=base, epochs=1, batch_size=0, sgd=SGDConfig(lr=1.0),
                        generator=torch.Generator().manual_seed(0))
    model.load(base)
    model.grad.zero_()
    F.cross_entropy(model.module(x), y).backward()
    expected = -torch.cat([p.grad.reshape(-1) for p in model.module.parameters()])
    assert out.steps == 1
    torch.testing.assert_close(out.delta, expected)


def test_same_generator_seed_gives_the_same_delta():
    model, x, y, base = _setup()
    runs = [train_locally(model, x, y, base=base, epochs=2, batch_size=8, sgd=SGDConfig(lr=0.1),
                          generator=torch.Generator().manual_seed(7)).delta.clone() for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    assert train_locally(model, x, y, base=base, epochs=2, batch_size=8, sgd=SGDConfig(lr=0.1),
                         generator=torch.Generator().manual_seed(8)).steps == 10


def test_proximal_term_keeps_the_client_closer_to_the_global_model():
    model, x, y, base = _setup()
    norms = {}
    for mu in (0.0, 1.0):
        out = train_locally(model, x, y, base=base, epochs=20, batch_size=8, sgd=SGDConfig(lr=0.1, proximal_mu=mu),
                            generator=torch.Generator().manual_seed(1))
        norms[mu] = float(out.delta.norm())
    assert norms[1.0] < norms[0.0]


def test_momentum_and_weight_decay_follow_the_textbook_update():
    model, x, y, base = _setup()
    sgd = SGDConfig(lr=0.1, momentum=0.9, weight_decay=0.01)
    ours = train_locally(model, x, y, base=base, epochs=1, batch_size=0, sgd=sgd, generator=torch.Generator().manual_seed(0))
    model.load(base)
    reference = torch.optim.SGD(model.module.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    reference.zero_grad()
    F.cross_entropy(model.module(x), y).backward()
    reference.step()
    np.testing.assert_allclose(ours.delta.numpy(), (model.flat - base).detach().numpy(), atol=1e-7)


def test_label_flip_attackers_train_towards_the_mirrored_class():
    import numpy as np

    from raysim.models.spec import ModelSpec

    from raysim.runtime.worker import ClientWorker
    from raysim.sim.kernel.tasks import ClientIndices, TrainingPlan, TrainTask

    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    y = np.zeros(20, dtype=np.int64)
    shards = ClientIndices.from_parts([np.arange(10), np.arange(10, 20)])
    plan = TrainingPlan(batch_size=5, sgd=SGDConfig(lr=0.5), seed=0, flipped_labels=frozenset({1}), num_classes=2)
    worker = ClientWorker(model=ModelSpec("logreg", (4,), 2), plan=plan, train_x=x, train_y=y, shards=shards)
    honest, attacker = worker.train(np.zeros(10, np.float32), [[TrainTask(0, 0, 1, 1)], [TrainTask(1, 1, 1, 1)]])
    bias = slice(8, 10)  # Linear(4, 2): 8 weights, then 2 biases
    assert honest.delta[bias][0] > honest.delta[bias][1]      # learns class 0
    assert attacker.delta[bias][1] > attacker.delta[bias][0]  # learns the flipped class 1


def test_a_batch_of_models_trains_like_one_client_at_a_time():
    import numpy as np

    from raysim.models.spec import ModelSpec

    from raysim.runtime.worker import ClientWorker
    from raysim.sim.kernel.tasks import ClientIndices, TrainingPlan, TrainTask, group_tasks

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=120)
    shards = ClientIndices.from_parts([np.arange(i * 20, (i + 1) * 20) for i in range(6)])
    # SCAFFOLD's client: the correction c - c_i is 0.01 i for odd clients, 0 for even ones
    tasks = [TrainTask(i, i, 3, 2, server={"control": np.zeros(7850)},
                       state={"control": np.full(7850, -0.01 * i)} if i % 2 else {}) for i in range(6)]
    params = (rng.normal(size=7850) * 0.01).astype(np.float32)
    plan = TrainingPlan(batch_size=8, sgd=SGDConfig(lr=0.1, momentum=0.5, proximal_mu=0.1), seed=1,
                        algorithm="scaffold")
    worker = ClientWorker(model=ModelSpec("logreg", (1, 28, 28), 10), plan=plan, train_x=x, train_y=y, shards=shards)
    results = {}
    for vectorize in (False, True):
        groups = group_tasks(tasks, [40.0] * 6, vectorize=vectorize)
        assert [len(g) for g in groups] == ([6] if vectorize else [1] * 6)
        results[vectorize] = worker.train(params, groups)
    for one, batched in zip(results[False], results[True]):
        assert (one.client_id, one.steps) == (batched.client_id, batched.steps)
        np.testing.assert_allclose(one.delta, batched.delta, atol=1e-6)
        np.testing.assert_allclose(one.state["control"], batched.state["control"], atol=1e-4)
        assert one.mean_loss == pytest.approx(batched.mean_loss, rel=1e-5)


def test_groups_depend_only_on_the_task_list():
    from raysim.sim.kernel.tasks import VECTOR_GROUP, TrainTask, group_tasks

    tasks = [TrainTask(i, 100 + i, 1, 1) for i in range(40)]
    costs = [60.0] * 35 + [30.0] * 5
    groups = group_tasks(tasks, costs, vectorize=True)
    assert [len(g) for g in groups] == [VECTOR_GROUP, VECTOR_GROUP, 35 - 2 * VECTOR_GROUP, 5]
    assert sorted(t.task_id for g in groups for t in g) == list(range(40))


def test_many_minibatch_steps_match_a_plain_torch_loop():
    model, x, y, base = _setup()
    ours = train_locally(model, x, y, base=base, epochs=3, batch_size=8, sgd=SGDConfig(lr=0.1),
                         generator=torch.Generator().manual_seed(5))
    reference = build_model("logreg", input_shape=(5,), num_classes=3)
    torch.nn.utils.vector_to_parameters(base.clone(), reference.parameters())
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        order = torch.randperm(40, generator=generator)
        for start in range(0, 40, 8):
            batch = order[start : start + 8]
            optimizer.zero_grad()
            F.cross_entropy(reference(x[batch]), y[batch]).backward()
            optimizer.step()
    expected = torch.nn.utils.parameters_to_vector(reference.parameters()).detach() - base
    assert ours.steps == 15
    torch.testing.assert_close(ours.delta, expected, atol=1e-6, rtol=1e-5)


def test_a_worker_on_uint8_pixels_trains_and_scores_as_on_their_standardised_floats():
    """Image data sets stay uint8 in the object store (a quarter of the memory); the worker
    standardises the rows it reads with the same float32 steps as numpy, so nothing changes."""
    from raysim.data.pixels import PixelScale
    from raysim.models.spec import ModelSpec
    from raysim.runtime.worker import ClientWorker
    from raysim.sim.kernel.evaluation import EvalSlice
    from raysim.sim.kernel.tasks import ClientIndices, TrainingPlan, TrainTask

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(60, 3, 4, 4), dtype=np.uint8)
    scale = PixelScale((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    y = rng.integers(0, 10, size=60)
    shards = ClientIndices.from_parts([np.arange(i * 20, (i + 1) * 20) for i in range(3)])
    plan = TrainingPlan(batch_size=5, sgd=SGDConfig(lr=0.1), seed=4)
    spec = ModelSpec("logreg", (3, 4, 4), 10)
    on_pixels = ClientWorker(model=spec, plan=plan, train_x=pixels, train_y=y, shards=shards, test_x=pixels[:30],
                             test_y=y[:30], pixels=scale)
    on_floats = ClientWorker(model=spec, plan=plan, train_x=scale.standardise(pixels), train_y=y, shards=shards,
                             test_x=scale.standardise(pixels[:30]), test_y=y[:30])
    params = (rng.normal(size=3 * 4 * 4 * 10 + 10) * 0.01).astype(np.float32)  # logreg: weights and biases
    groups = [[TrainTask(0, 0, 1, 1)], [TrainTask(1, 1, 1, 1), TrainTask(2, 2, 1, 1)]]  # one alone, two batched
    for a, b in zip(on_pixels.train(params, groups), on_floats.train(params, groups)):
        np.testing.assert_array_equal(a.delta, b.delta)
    slices = [EvalSlice(split="test", indices=np.arange(30)), EvalSlice(split="train", indices=np.arange(10, 50))]
    assert on_pixels.evaluate(params, slices) == on_floats.evaluate(params, slices)
