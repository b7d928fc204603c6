import math

from torch import nn


class TinyMLP(nn.Sequential):
    """One hidden layer of ``hidden`` units; raysim passes ``input_shape`` and ``num_classes``."""

    def __init__(self, input_shape, num_classes, hidden: int = 16):
        super().__init__(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))
