"""FedDyn's client as it was written before the functional form: its own loop with torch.optim,
client by client. Kept as the reference the functional client is tested against
(tests/examples/test_feddyn.py): the same objective and state, results within float32 rounding.
And the data set those tests run on: clients of equal size, so that a round's clients can be
trained as one batch of models."""

from __future__ import annotations

import numpy as np
import torch

from raysim.models.algorithm import LocalResult, LocalTask


class LoopFedDynClient:
    def __init__(self, alpha: float = 0.01):
        self.alpha = float(alpha)

    def train(self, task: LocalTask) -> LocalResult:
        sgd = task.settings.sgd
        params, grad = task.flat.params, task.flat.grad
        anchor = task.start[: params.numel()]
        own = torch.tensor(task.state.get("gradient", np.zeros(params.numel(), np.float32)), device=params.device)
        optimizer = torch.optim.SGD(task.model.parameters(), lr=sgd.lr, momentum=sgd.momentum,
                                    weight_decay=sgd.weight_decay)
        task.model.train()
        steps, loss_sum, seen = 0, 0.0, 0
        for x, y in task.batches():
            grad.zero_()
            loss = task.loss(task.model(x), y)
            loss.backward()
            with torch.no_grad():  # the gradient of -<g_i, w> + alpha/2 ||w - w_global||^2
                grad.add_(params - anchor, alpha=self.alpha).sub_(own)
            optimizer.step()
            steps, loss_sum, seen = steps + 1, loss_sum + loss.item() * len(y), seen + len(y)
        with torch.no_grad():
            own = own - self.alpha * (params - anchor)
        return LocalResult(steps=steps, loss=loss_sum / max(seen, 1),
                           state={"gradient": own.cpu().numpy().astype(np.float32)})


def points(seed: int) -> dict:
    """160 points in 5 dimensions, 3 classes split by two planes, 20 rows of each of 8 clients
    (``partition = "iid"``), and 60 test points."""
    rng = np.random.default_rng(seed)
    x, test = (rng.normal(size=(n, 5)).astype(np.float32) for n in (160, 60))

    def label(rows: np.ndarray) -> np.ndarray:
        return (rows[:, 0] > 0).astype(np.int64) + (rows[:, 1] + rows[:, 2] > 0.5)

    return {"train_x": x, "train_y": label(x), "test_x": test, "test_y": label(test)}
