"""Ditto, fair and robust federated learning through personalisation (Li, Hu, Beirami, Smith,
ICML 2021, arXiv:2012.04221), as a raysim client algorithm: ``ditto:DittoClient``; the server
is plain FedAvg.

Each round a client trains two models on the same local examples for the same number of steps:
the global model w as FedAvg does (its update is what the client sends), and its own personal
model v_i (the client's state ``personal``; the first time, the global model it received) on

    F_i(v) + lambda/2 ||v - w_global||^2,

w_global the global model of the round. To measure the personal models, every client's examples
are split once, by its id (the same split every round), into a training part (80% by default)
and a held-out part; both models train on the training part only. Metrics per client and round
(clients.parquet): ``personal_accuracy`` (v_i after training) and ``global_accuracy`` (the
received global model, before training) on the held-out part, and ``held_out`` (its size; with
none held out, only ``held_out = 0`` is reported).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import torch

from raysim.models.algorithm import LocalResult, LocalTask

__all__ = ["DittoClient", "split"]


def split(num_examples: int, client_id: int, held_out: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(training rows, held-out rows) of a client's examples: a permutation seeded by the client
    id alone, so every round holds out the same examples."""
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(client_id))
    count = int(num_examples * held_out)
    return order[count:], order[:count]


class DittoClient:
    def __init__(self, lam: float = 0.1, held_out: float = 0.2):
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        if not 0 <= held_out < 1:
            raise ValueError(f"held_out must be in [0, 1), got {held_out}")
        self.lam, self.held_out = float(lam), float(held_out)

    def train(self, task: LocalTask) -> LocalResult:
        rows, held = (r.to(task.x.device) for r in split(task.x.shape[0], task.client_id, self.held_out))
        local = replace(task, x=task.x[rows], y=task.y[rows])
        test = task.x[held], task.y[held]
        metrics = {"held_out": float(len(held))}
        if len(held):
            metrics["global_accuracy"] = _accuracy(task.model, *test)
        steps, loss = _sgd(local, pull=None)
        delta = local.trained_delta()
        personal = task.state.get("personal")
        task.flat.load(task.start if personal is None else torch.tensor(personal))
        anchor = task.start[: task.flat.params.numel()]
        _sgd(local, pull=lambda params: self.lam * (params - anchor))
        if len(held):
            metrics["personal_accuracy"] = _accuracy(task.model, *test)
        return LocalResult(steps=steps, loss=loss, examples=len(rows), delta=delta,
                           state={"personal": task.flat.state()}, metrics=metrics)


def _sgd(task: LocalTask, pull: Callable[[torch.Tensor], torch.Tensor] | None) -> tuple[int, float]:
    """The client's SGD over ``task.batches()`` from the weights the model holds, with ``pull(w)``
    added to every gradient; (steps, mean loss)."""
    sgd = task.settings.sgd
    params, grad = task.flat.params, task.flat.grad
    optimizer = torch.optim.SGD(task.model.parameters(), lr=sgd.lr, momentum=sgd.momentum,
                                weight_decay=sgd.weight_decay)
    task.model.train()
    steps, loss_sum, seen = 0, 0.0, 0
    for x, y in task.batches():
        grad.zero_()
        loss = task.loss(task.model(x), y)
        loss.backward()
        if pull is not None:
            with torch.no_grad():
                grad.add_(pull(params))
        optimizer.step()
        steps, loss_sum, seen = steps + 1, loss_sum + loss.item() * len(y), seen + len(y)
    return steps, loss_sum / max(seen, 1)


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    correct = sum(int((model(x[i : i + batch]).argmax(dim=1) == y[i : i + batch]).sum())
                  for i in range(0, len(y), batch))
    return correct / len(y)
