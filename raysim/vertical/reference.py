"""Central references: the same model on all columns in one place, on the same rows.

A vertical trainer is judged beside these (FATE's rule: within 1% relative). They are the
simulator's yardstick, not part of the federation: no party could compute them.
"""

from __future__ import annotations

import numpy as np
import torch

from raysim.vertical import splitnn
from raysim.vertical.netshape import NetShape
from raysim.vertical.party import metrics


def logistic(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    """scikit-learn's ``LogisticRegression(max_iter=1000)`` (C = 1): train and test metrics."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    return {**{f"train_{k}": v for k, v in metrics(model.predict_proba(x_train), y_train).items()},
            **{f"test_{k}": v for k, v in metrics(model.predict_proba(x_test), y_test).items()}}


def split_network(parts_train: list[np.ndarray], y_train: np.ndarray, parts_test: list[np.ndarray],
                  y_test: np.ndarray, *, shape: NetShape, classes: int, seeds: list[int],
                  batches: list[list[np.ndarray]]) -> list[dict[str, float]]:
    """The SplitNN network trained centrally: bottoms from ``seeds[k]``, the top from
    ``seeds[-1]``, the same ``batches`` per epoch; test metrics after each epoch."""
    widths = [p.shape[1] for p in parts_train]
    net = splitnn.Central([splitnn.bottom(w, shape, s) for w, s in zip(widths, seeds)],
                          splitnn.top(len(widths), classes, shape, seeds[-1]), widths)
    opt = splitnn.optimiser(net, shape)
    x, xt = torch.from_numpy(np.hstack(parts_train)), torch.from_numpy(np.hstack(parts_test))
    y = torch.from_numpy(y_train)
    curve = []
    for epoch in batches:
        net.train()
        for batch in epoch:
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            curve.append(metrics(torch.softmax(net(xt), dim=1).numpy(), y_test))
    return curve
