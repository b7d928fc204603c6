import numpy as np
import torch

from raysim.models.algorithm import LocalResult, LocalTask


class ProxSGD:
    """FedProx's local step written with torch.optim: SGD on the loss plus mu/2 ||w - w_global||^2.
    Its state counts the client's rounds; its metric is the distance travelled from the global model."""

    def __init__(self, mu: float = 0.01):
        self.mu = mu

    def train(self, task: LocalTask) -> LocalResult:
        optimizer = torch.optim.SGD(task.model.parameters(), lr=task.settings.sgd.lr)
        anchor = [p.detach().clone() for p in task.model.parameters()]
        steps, total = 0, 0.0
        for x, y in task.batches():
            optimizer.zero_grad()
            loss = task.loss(task.model(x), y)
            prox = sum(((p - a) ** 2).sum() for p, a in zip(task.model.parameters(), anchor))
            (loss + self.mu / 2 * prox).backward()
            optimizer.step()
            steps, total = steps + 1, total + loss.item()
        rounds = task.state.get("rounds", np.zeros(1, dtype=np.int64)) + 1
        drift = float(np.linalg.norm(task.trained_delta()))
        return LocalResult(steps=steps, loss=total / max(steps, 1), state={"rounds": rounds},
                           metrics={"drift": drift, "rounds": float(rounds[0])})
