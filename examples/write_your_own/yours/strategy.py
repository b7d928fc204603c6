import numpy as np


class CoordinateMedian:
    """The coordinate-wise median of the round's deltas, moved by ``lr``; its state counts the
    rounds in which it saw an update (a user strategy's state is numbers and arrays)."""

    def __init__(self, lr: float = 1.0):
        self.lr = lr

    def init(self, params):
        return {"applied": 0}

    def aggregate(self, params, state, updates):
        if not updates:
            return params, state, {}
        median = np.median(np.stack([u.delta * u.scale for u in updates]), axis=0)
        moved = (params + self.lr * median).astype(params.dtype)
        return moved, {"applied": state["applied"] + 1}, {"median_norm": float(np.linalg.norm(median))}
