"""FedDyn's client: SGD on the dynamically regularised objective

    L_i(w) - <g_i, w> + alpha/2 ||w - w_global||^2,

g_i the client's own state (zero the first time it takes part), then g_i <- g_i - alpha (w_i - w_global).
At a fixed point g_i is client i's gradient at the optimum, so the linear term cancels the drift
that makes FedAvg's local optima disagree with the global one.

Written in raysim's functional form (``raysim.models.functional``): the objective and the state
update are functions, so raysim trains a batch of clients as one batch of models when the scenario
vectorises (``resources.vectorize``), and client by client otherwise, with the same results within
float32 rounding."""

from __future__ import annotations

import torch

from raysim.models.functional import Batch, Context, FunctionalClient


class FedDynClient(FunctionalClient):
    def __init__(self, alpha: float = 0.01):
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)

    def objective(self, params: torch.Tensor, batch: Batch, context: Context) -> torch.Tensor:
        self._check_server(context.server)
        linear = (context.state["gradient"] * params).sum()
        return batch.loss - linear + self.alpha / 2 * (params - context.start).square().sum()

    def init_state(self, start: torch.Tensor, server: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"gradient": torch.zeros_like(start)}

    def new_state(self, context: Context, delta: torch.Tensor, steps: int, lr: float) -> dict[str, torch.Tensor]:
        return {"gradient": context.state["gradient"] - self.alpha * delta}

    def _check_server(self, server: dict[str, torch.Tensor]) -> None:
        """FedDynServer broadcasts its alpha: the two halves must use the same one."""
        theirs = server["alpha"].item() if "alpha" in server else self.alpha
        if theirs != self.alpha:
            raise ValueError(f"client.algorithm_options.alpha = {self.alpha} but server.strategy_options.alpha = "
                             f"{theirs}: set both to the same value")
