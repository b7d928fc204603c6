"""SplitNN (Gupta & Raskar 2018, arXiv:1810.06060; Vepakomma et al. 2018, arXiv:1812.00564).

Every party k runs a bottom model f_k on its own columns and sends the embedding h_k = f_k(x_k);
the label party runs the top model g on [h_1 || ... || h_K], computes the loss, updates g and
sends each party dL/dh_k, with which the party updates f_k. Per batch and party, B x dim(h_k)
float32 values go up and the same number come down.

Privacy: raw columns and labels never leave their party, but embeddings and their gradients do,
and dL/dh_k can leak labels: SplitNN is not a cryptographic guarantee.

The central reference is the same network (the bottoms side by side, then the top) trained in
one process from the same initial weights, batch order and optimiser: SplitNN computes exactly
the same gradients, so the two differ only by floating-point order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raysim.vertical.netshape import NetShape


def bottom(inputs: int, shape: NetShape, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, shape.hidden), nn.ReLU(), nn.Linear(shape.hidden, shape.embedding), nn.ReLU())


def top(parties: int, classes: int, shape: NetShape, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(parties * shape.embedding, classes)


def optimiser(module: nn.Module, shape: NetShape) -> torch.optim.Optimizer:
    return torch.optim.SGD(module.parameters(), lr=shape.lr, momentum=shape.momentum)


class Bottom:
    """A party's half: forward keeps the graph until the gradient for that batch comes back."""

    def __init__(self, module: nn.Module, shape: NetShape):
        self.module, self.opt, self._out = module, optimiser(module, shape), None

    def forward(self, x: np.ndarray, *, train: bool) -> np.ndarray:
        self.module.train(train)
        with torch.set_grad_enabled(train):
            out = self.module(torch.from_numpy(x))
        self._out = out if train else None
        return out.detach().numpy()

    def backward(self, grad: np.ndarray) -> None:
        self.opt.zero_grad()
        self._out.backward(torch.from_numpy(grad))
        self.opt.step()
        self._out = None


class Top:
    """The label party's top model: one step from the embeddings, returning dL/dh_k."""

    def __init__(self, module: nn.Module, shape: NetShape):
        self.module, self.opt = module, optimiser(module, shape)

    def step(self, embeddings: list[np.ndarray], labels: np.ndarray) -> tuple[float, list[np.ndarray]]:
        hs = [torch.from_numpy(h).requires_grad_(True) for h in embeddings]
        loss = nn.functional.cross_entropy(self.module(torch.cat(hs, dim=1)), torch.from_numpy(labels))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach()), [h.grad.numpy() for h in hs]

    def predict(self, embeddings: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.module(torch.from_numpy(np.concatenate(embeddings, axis=1))), dim=1).numpy()


class Central(nn.Module):
    """The same network on all columns in one place: the central reference."""

    def __init__(self, bottoms: list[nn.Module], head: nn.Module, widths: list[int]):
        super().__init__()
        self.bottoms, self.head, self.widths = nn.ModuleList(bottoms), head, widths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.widths, dim=1)
        return self.head(torch.cat([f(p) for f, p in zip(self.bottoms, parts)], dim=1))
