import torch

from raysim.models.functional import Batch, Context, FunctionalClient


class OwnProx(FunctionalClient):
    """FedProx's pull towards the client's own last trained model instead of the global one: the
    objective and the state update are functions, so raysim can train many clients as one batch."""

    def __init__(self, mu: float = 0.1):
        self.mu = mu

    def objective(self, params: torch.Tensor, batch: Batch, context: Context) -> torch.Tensor:
        return batch.loss + self.mu / 2 * (params - context.state["last"]).square().sum()

    def init_state(self, start: torch.Tensor, server) -> dict[str, torch.Tensor]:
        return {"last": start.clone()}  # a newcomer is pulled towards the global model, as in FedProx

    def new_state(self, context: Context, delta: torch.Tensor, steps: int, lr: float) -> dict[str, torch.Tensor]:
        return {"last": context.start + delta}
