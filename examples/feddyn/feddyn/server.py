"""FedDyn's server: it keeps h, the running sum of the clients' drifts scaled by alpha over the
whole population,

    h <- h - alpha/m sum_{i in round} (w_i - w_global),    w_global <- mean_{i in round}(w_i) - h/alpha,

m the number of clients in the population (the run tells ``init``: ``run.population``, not the
round's). The mean is unweighted, as in the paper. State: ``{"h": array}``, checkpointed with the run."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from raysim.algorithms.strategy import RunFacts, Update


class FedDynServer:
    def __init__(self, alpha: float = 0.01):
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.population = 0  # told by the run in init

    def init(self, params: np.ndarray, run: RunFacts) -> dict[str, np.ndarray]:
        self.population = run.population
        return {"h": np.zeros(params.size, dtype=np.float64)}

    def broadcast(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"alpha": np.array([self.alpha])}

    def aggregate(self, params: np.ndarray, state: dict[str, np.ndarray],
                  updates: Sequence[Update]) -> tuple[np.ndarray, dict[str, np.ndarray], Mapping[str, float]]:
        if not updates:
            return params, state, {"h_norm": float(np.linalg.norm(state["h"]))}
        for update in updates:
            if not 0 <= update.client_id < self.population:
                raise ValueError(f"client {update.client_id} reported, but the population has {self.population} "
                                 "clients")
        deltas = np.stack([u.scale * np.asarray(u.delta, dtype=np.float64) for u in updates])
        h = state["h"] - self.alpha * deltas.sum(axis=0) / self.population
        new = params.astype(np.float64) + deltas.mean(axis=0) - h / self.alpha
        return new.astype(params.dtype), {"h": h}, {"h_norm": float(np.linalg.norm(h))}
