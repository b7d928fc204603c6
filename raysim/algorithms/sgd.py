"""The client optimiser's settings: the strategy (FedSGD, FedNova) reads them and local training
runs them, so they live with the math, below both the driver and the scenario."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SGDConfig:
    """The client optimiser: SGD with optional heavy-ball momentum, weight decay and prox term."""

    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    proximal_mu: float = 0.0
