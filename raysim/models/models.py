"""Models by name, and user models named as ``package.module:Class``.

The FedAvg paper's 2NN and CNN (McMahan et al. 2017, arXiv:1602.05629) are built exactly so
their parameter counts are 199,210 and 1,663,370 on 28x28 inputs: the CNN count requires
"same" padding on both 5x5 convolutions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from raysim.inputs import ConfigError, check_call, import_class
from raysim.models.layout import ParamLayout
from raysim.models.params import FlatModel

if TYPE_CHECKING:
    from raysim.models.spec import ModelSpec


@dataclass(frozen=True)
class ModelInfo:
    description: str
    build: Callable[[tuple[int, ...], int], nn.Module]


def _logreg(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def _mlp2nn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), 200),
        nn.ReLU(),
        nn.Linear(200, 200),
        nn.ReLU(),
        nn.Linear(200, num_classes),
    )


def _cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    channels, height, width = _image_shape(input_shape, "cnn")
    flat = 64 * (height // 4) * (width // 4)
    return nn.Sequential(
        nn.Conv2d(channels, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(flat, 512),
        nn.ReLU(),
        nn.Linear(512, num_classes),
    )


def _resnet18(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 with the usual CIFAR stem (3x3 stride-1 conv, no max-pool)."""
    import torchvision

    channels, _, _ = _image_shape(input_shape, "resnet18")
    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def _linear_regressor(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_outputs))


def _mlp_regressor(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, num_outputs))


class CharLSTM(nn.Module):
    """LEAF's Shakespeare model (Caldas et al. 2018, arXiv:1812.01097; as in FedProx's
    experiments): an 8-dimensional character embedding, two LSTM layers of 256 units and a linear
    layer to the vocabulary, read at the last position: the next character's logits [B, V]. On
    sequences of targets (y [B, T]) it gives logits at every position [B, T, V] instead."""

    def __init__(self, vocabulary: int, *, embedding: int = 8, hidden: int = 256, layers: int = 2,
                 every_position: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, embedding)
        self.lstm = nn.LSTM(embedding, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, vocabulary)
        self.every_position = every_position

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(self.embed(tokens.long()))
        return self.out(states if self.every_position else states[:, -1])


def _char_lstm(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 1:
        raise ValueError(f"model 'char_lstm' needs sequences of token ids (length,), got shape {input_shape}")
    return CharLSTM(num_classes)


def _image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"model '{model}' needs image inputs (channels, height, width), got shape {input_shape}")
    return input_shape  # type: ignore[return-value]


MODELS: dict[str, ModelInfo] = {
    "logreg": ModelInfo("multinomial logistic regression (one linear layer)", _logreg),
    "mlp2nn": ModelInfo("FedAvg 2NN: MLP 784-200-200-10 with ReLU (199,210 params)", _mlp2nn),
    "cnn": ModelInfo("FedAvg CNN: two 5x5 convs, 512 FC (1,663,370 params on 28x28)", _cnn),
    "resnet18": ModelInfo("torchvision ResNet-18 with a CIFAR stem", _resnet18),
    "linear_regressor": ModelInfo("linear regression on tabular features (one linear layer)", _linear_regressor),
    "mlp_regressor": ModelInfo("MLP regressor: features-64-64-outputs with ReLU", _mlp_regressor),
    "char_lstm": ModelInfo("LEAF's Shakespeare model: embedding 8, 2 LSTM layers of 256, next-character logits",
                           _char_lstm),
}


def build_model(
    name: str, *, input_shape: tuple[int, ...], num_classes: int, options: Mapping[str, Any] | None = None
) -> nn.Module:
    """Builds a model by registry name or by ``package.module:Class``.

    A user class (checked to be an ``nn.Module`` subclass before it is called) is called as
    ``Class(**options)`` when options are given, else with ``input_shape`` and ``num_classes``
    keyword arguments if it accepts them, else with none.
    """
    if name in MODELS:
        if options:
            raise ValueError(f"model.options is only for user models; '{name}' takes none")
        return MODELS[name].build(tuple(input_shape), num_classes)
    return _build_user_model(name, input_shape=tuple(input_shape), num_classes=num_classes, options=options or {})


def _build_user_model(
    name: str, *, input_shape: tuple[int, ...], num_classes: int, options: Mapping[str, Any]
) -> nn.Module:
    cls = import_class(name, what="model.name", choices=sorted(MODELS), base=nn.Module, base_name="torch.nn.Module")
    arguments = dict(options) if options else _shape_arguments(cls, input_shape, num_classes)
    try:
        check_call(cls, arguments, what=f"model.name '{name}' (built with model.options)")
    except ConfigError as exc:
        raise ValueError(str(exc)) from exc
    try:
        return cls(**arguments)
    except Exception as exc:  # user code: any failure is the scenario's, reported in one line
        raise ValueError(f"model.name '{name}' could not be built with model.options = {dict(options)} "
                         f"({type(exc).__name__}: {exc})") from exc


def _shape_arguments(cls: type, input_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """Without model.options, a user's model is given the data's shape and class count when its
    constructor takes them (read before the call, not by calling and catching TypeError), else nothing."""
    shape = {"input_shape": input_shape, "num_classes": num_classes}
    try:
        check_call(cls, shape, what="model.name")
    except ConfigError:
        return {}
    return shape


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def initial_model(
    name: str, *, input_shape: tuple[int, ...], num_classes: int, options: Mapping[str, Any] | None, seed: int
) -> nn.Module:
    """The global model at version 0, its initial weights a function of the seed alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, input_shape=input_shape, num_classes=num_classes, options=options)


def initial_state(spec: ModelSpec, seed: int) -> tuple[np.ndarray, ParamLayout]:
    """The global model at version 0 as a flat vector, and its layout (see ``initial_model``)."""
    module = initial_model(spec.name, input_shape=spec.input_shape, num_classes=spec.num_classes,
                           options=spec.options, seed=seed)
    flat = FlatModel(module)
    return flat.state(), flat.layout
