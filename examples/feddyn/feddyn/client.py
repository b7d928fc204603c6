"""FedDyn's client: SGD on the dynamically regularised objective

    L_i(w) - <g_i, w> + alpha/2 ||w - w_global||^2,

g_i the client's own state (zero the first time it takes part), then g_i <- g_i - alpha (w_i - w_global).
At a fixed point g_i is client i's gradient at the optimum, so the linear term cancels the drift
that makes FedAvg's local optima disagree with the global one."""

from __future__ import annotations

import numpy as np
import torch

from raysim.models.algorithm import LocalResult, LocalTask


class FedDynClient:
    def __init__(self, alpha: float = 0.01):
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)

    def train(self, task: LocalTask) -> LocalResult:
        self._check_server(task.server)
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

    def _check_server(self, server: dict[str, np.ndarray]) -> None:
        """FedDynServer broadcasts its alpha: the two halves must use the same one."""
        theirs = np.asarray(server["alpha"]).item() if "alpha" in server else self.alpha
        if theirs != self.alpha:
            raise ValueError(f"client.algorithm_options.alpha = {self.alpha} but server.strategy_options.alpha = "
                             f"{theirs}: set both to the same value")
