"""FedDyn as one object (``[algorithm] kind = "feddyn:FedDyn"``): both halves from one ``alpha``,
so the scenario writes it once and the two sides cannot disagree."""

from __future__ import annotations

from feddyn.client import FedDynClient
from feddyn.server import FedDynServer


class FedDyn:
    def __init__(self, alpha: float = 0.01):
        self.alpha = alpha  # kept by its name: raysim.api.run records it for a resume

    def client(self) -> FedDynClient:
        return FedDynClient(alpha=self.alpha)

    def server(self) -> FedDynServer:
        return FedDynServer(alpha=self.alpha)
