"""raysim's native twin of the Flower quickstart app (tests/flower_apps/message_app.py): the same
nodes' examples as a raysim data function, the union of the nodes' validation parts as the test
set (so raysim's test accuracy is what Flower's examples-weighted evaluate accuracy over every
node measures), the same CNN as a user model."""

from __future__ import annotations

import numpy as np


def partitions(num_partitions: int = 4, train_examples: int = 600) -> dict:
    from tests.flower_apps.task import load_data

    parts = [load_data(p, num_partitions, train_examples) for p in range(num_partitions)]
    train = [loader.dataset.tensors for loader, _ in parts]
    held = [loader.dataset.tensors for _, loader in parts]
    return {"train_x": np.concatenate([x.numpy() for x, _ in train]), "train_y": np.concatenate([y.numpy() for _, y in train]),
            "test_x": np.concatenate([x.numpy() for x, _ in held]), "test_y": np.concatenate([y.numpy() for _, y in held]),
            "train_client": np.concatenate([np.full(len(y), p) for p, (_, y) in enumerate(train)]), "num_classes": 10}


def native_table(*, nodes: int, train_examples: int, rounds: int, fraction: float, lr: float, seed: int) -> dict:
    """The native raysim scenario doing what the Flower app does: FedAvg of a fraction of the
    nodes each round, one epoch of SGD with momentum 0.9 and batch 32 on each node's examples."""
    return {"run": {"name": "native_twin", "seed": seed, "rounds": rounds, "executor": "local"},
            "data": {"dataset": "tests.flower.native_twin:partitions", "num_clients": nodes, "partition": "natural",
                     "options": {"num_partitions": nodes, "train_examples": train_examples}},
            "model": {"name": "tests.flower_apps.task:Net"},
            "client": {"epochs": 1, "batch_size": 32, "lr": lr, "momentum": 0.9},
            "selection": {"clients_per_round": int(nodes * fraction)}}
