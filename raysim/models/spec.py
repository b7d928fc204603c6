"""A model named by a scenario, as the workers receive it: a name and shapes, no torch until
``build`` is called (the driver carries specs but never builds one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    options: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> torch.nn.Module:
        from raysim.models.models import build_model  # torch only where a model is built

        return build_model(self.name, input_shape=self.input_shape, num_classes=self.num_classes, options=self.options)
