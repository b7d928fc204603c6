"""A model named by a scenario, as the workers receive it: a name and shapes, no torch until
``build`` is called (the driver carries specs but never builds one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import torch


# What the built-in models predict: class scores (classification, next_token) or values
# (regression), so a task on the wrong kind of model is refused at load (models.py builds them).
MODEL_TARGETS = {"logreg": "class", "mlp2nn": "class", "cnn": "class", "resnet18": "class", "char_lstm": "class",
                 "linear_regressor": "value", "mlp_regressor": "value"}
# Built-in models that ``resources.vectorize = "auto"`` trains client by client: torch.func has no
# batching rule for the LSTM kernel and falls back to a slow loop under vmap.
NOT_VECTORIZED = frozenset({"char_lstm"})


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    options: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> torch.nn.Module:
        from raysim.models.models import build_model  # torch only where a model is built

        return build_model(self.name, input_shape=self.input_shape, num_classes=self.num_classes, options=self.options)
