"""MOON, model-contrastive federated learning (Li, He, Song, CVPR 2021, arXiv:2103.16257), as a
raysim client algorithm: ``moon:MoonClient``; the server is plain FedAvg.

Each local step adds mu * l_con to the task's loss, with

    l_con = -log( e^{sim(z, z_glob)/tau} / (e^{sim(z, z_glob)/tau} + e^{sim(z, z_prev)/tau}) ),

sim the cosine similarity and z, z_glob, z_prev the representations of the batch under the
model being trained, the global model the round started from and the client's model from the
last round it took part in. The representation is the output of ``model[:-1]``, the model
without its last layer, so the model must be an ``nn.Sequential`` (raysim's ``cnn`` and
``mlp2nn`` are; the paper adds a projection head instead). The previous model is the client's
state ``previous`` (the flat float32 weights it trained to); the first time it is the global
model, which makes the two similarities equal and l_con = log 2, a constant. The loss reported
is the task's; the batch mean of l_con is the metric ``contrastive_loss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from raysim.models.algorithm import LocalResult, LocalTask

__all__ = ["MoonClient", "contrastive_loss"]


def contrastive_loss(z: torch.Tensor, z_glob: torch.Tensor, z_prev: torch.Tensor, tau: float) -> torch.Tensor:
    """MOON's l_con, averaged over the batch: the positive pair (z, z_glob) against the negative
    (z, z_prev), cosine similarities over ``tau``."""
    logits = torch.stack([F.cosine_similarity(z, z_glob, dim=-1), F.cosine_similarity(z, z_prev, dim=-1)], dim=-1)
    return F.cross_entropy(logits / tau, torch.zeros(z.shape[0], dtype=torch.long, device=z.device))


class MoonClient:
    def __init__(self, mu: float = 1.0, tau: float = 0.5):
        if not mu >= 0:
            raise ValueError(f"mu must be >= 0, got {mu}")
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        self.mu, self.tau = float(mu), float(tau)

    def train(self, task: LocalTask) -> LocalResult:
        model = task.model
        if not isinstance(model, nn.Sequential) or len(model) < 2:
            raise TypeError(f"MOON takes the representation from model[:-1], which needs an nn.Sequential of at "
                            f"least two layers; this model is a {type(model).__name__}: use model.name = 'cnn' or "
                            f"'mlp2nn', or a Sequential model of your own")
        body, head = model[:-1], model[-1]
        previous = task.state.get("previous")
        anchors = [task.start, task.start if previous is None else torch.tensor(previous, device=task.start.device)]
        names = {name for name, _ in body.named_parameters()} | {name for name, _ in body.named_buffers()}
        # copies: a BatchNorm layer in train mode would update its statistics in the start weights
        frozen = [{k: v for k, v in task.unflatten(w.clone()).items() if k in names} for w in anchors]
        sgd = task.settings.sgd
        optimizer = torch.optim.SGD(model.parameters(), lr=sgd.lr, momentum=sgd.momentum,
                                    weight_decay=sgd.weight_decay)
        model.train()
        steps, loss_sum, contrast_sum, seen = 0, 0.0, 0.0, 0
        for x, y in task.batches():
            task.flat.grad.zero_()
            z = body(x)
            with torch.no_grad():
                z_glob, z_prev = (functional_call(body, weights, (x,)) for weights in frozen)
            loss, contrast = task.loss(head(z), y), contrastive_loss(z, z_glob, z_prev, self.tau)
            (loss + self.mu * contrast).backward()
            optimizer.step()
            steps, seen = steps + 1, seen + len(y)
            loss_sum, contrast_sum = loss_sum + loss.item() * len(y), contrast_sum + contrast.item() * len(y)
        return LocalResult(steps=steps, loss=loss_sum / max(seen, 1), state={"previous": task.flat.state()},
                           metrics={"contrastive_loss": contrast_sum / max(seen, 1)})
