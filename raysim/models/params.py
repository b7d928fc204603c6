"""A model's floating-point state as one flat float32 vector.

The math layer (aggregation, server optimizers, privacy) works on flat numpy vectors; the
runtime keeps each torch model's parameters and buffers as *views* into one contiguous tensor,
so loading the global model into an actor's model is a single ``copy_`` and reading the trained
model back is a single clone, whatever the number of layers.

Parameters come first in the vector, then floating buffers (e.g. BatchNorm running stats):
gradient-based terms (FedProx, SCAFFOLD) act on the parameter prefix only, while averaging
covers the whole state, as FedAvg implementations commonly do for BatchNorm statistics.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raysim.models.layout import ParamLayout


class FlatModel:
    """An ``nn.Module`` whose floating state lives in one flat tensor ``self.flat``.

    ``self.grad`` is the flat gradient of the parameter prefix; autograd accumulates into its
    views in place, so gradient corrections are one vector operation.
    """

    def __init__(self, module: nn.Module, device: torch.device | str = "cpu"):
        self.module = module.to(device)
        params = [(n, p) for n, p in self.module.named_parameters()]
        buffers = [(n, b) for n, b in self.module.named_buffers() if b.is_floating_point()]
        entries = params + buffers
        num_trainable = sum(p.numel() for _, p in params)
        total = sum(t.numel() for _, t in entries)
        self.flat = torch.zeros(total, dtype=torch.float32, device=device)
        self.grad = torch.zeros(num_trainable, dtype=torch.float32, device=device)
        self._bound: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # parameter, its views
        offset = 0
        for name, tensor in entries:
            n = tensor.numel()
            view = self.flat[offset : offset + n].view_as(tensor)
            view.copy_(tensor.detach().float())
            if offset < num_trainable:
                tensor.data = view
                tensor.grad = self.grad[offset : offset + n].view_as(tensor)
                self._bound.append((tensor, view, tensor.grad))
            else:
                _set_buffer(self.module, name, view)
            offset += n
        self.layout = ParamLayout(
            names=tuple(n for n, _ in entries),
            shapes=tuple(tuple(t.shape) for _, t in entries),
            num_trainable=num_trainable,
        )

    @property
    def params(self) -> torch.Tensor:
        """The trainable prefix of the flat state (a view)."""
        return self.flat[: self.layout.num_trainable]

    def rebind(self) -> None:
        """Points every parameter and its gradient at their views again: a user's local update
        may have let an optimizer set the gradients to None (``zero_grad``'s default), after
        which autograd would fill new tensors outside ``self.grad``."""
        for tensor, view, grad in self._bound:
            tensor.data = view
            tensor.grad = grad

    def load(self, vector: np.ndarray | torch.Tensor) -> None:
        """Copies a flat state vector into the model in place."""
        source = torch.as_tensor(vector) if isinstance(vector, np.ndarray) else vector
        if source.numel() != self.flat.numel():
            raise ValueError(f"state vector has {source.numel()} entries, model has {self.flat.numel()}")
        self.flat.copy_(source.reshape(-1))

    def state(self) -> np.ndarray:
        """A numpy copy of the flat state (float32)."""
        return self.flat.detach().cpu().numpy().copy()


def _set_buffer(module: nn.Module, dotted: str, value: torch.Tensor) -> None:
    *path, leaf = dotted.split(".")
    owner = module
    for part in path:
        owner = getattr(owner, part)
    owner._buffers[leaf] = value
