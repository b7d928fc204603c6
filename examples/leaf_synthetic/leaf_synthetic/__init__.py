"""LEAF's Synthetic federated data set, generated in code at any number of clients (raysim's
data-function protocol: ``[data] dataset = "leaf_synthetic:generate"``).

The generative process of LEAF (Caldas et al. 2018, arXiv:1812.01097, section "Synthetic"; the
authors' data/synthetic generator), which extends FedProx's Synthetic with clustered models:

- a shared tensor Q ~ N(0, 1) of shape (num_dim + 1, num_classes, K) for K model clusters (LEAF's
  default: one cluster, probability 1), and a diagonal covariance Sigma_jj = (j + 1)^-1.2;
- each cluster's centre: l ~ N(0, 1), mu ~ N(l, 1) in R^K;
- each client (a LEAF "task"): its size n = min(floor(LogNormal(3, 2)) + 5, 1000); its cluster c
  drawn by the cluster probabilities; its model w = Q u with u ~ N(mu_c, 0.1^2); its inputs
  x ~ N(m, Sigma) with m ~ N(B, 1) per dimension and B ~ N(0, 1), plus a bias feature 1; its
  labels y = argmax(softmax(x w + e)), e ~ N(0, 0.1^2) per class; the bias feature is then dropped.

Each client's examples are split by ``train_share`` (LEAF's ``preprocess.sh -t sample --tf 0.6``):
the training part is the client's data, the rest joins the central test set. Draws come from one
numpy Generator seeded by ``seed`` in this order, so a seed gives one data set (not LEAF's own
files, which come from numpy's global state with the authors' seed 931231).
"""

from __future__ import annotations

import numpy as np


def generate(seed: int, num_clients: int = 1000, num_classes: int = 5, num_dim: int = 60,
             clusters: tuple[float, ...] = (1.0,), train_share: float = 0.6) -> dict:
    """The train and test arrays and each training example's client."""
    rng = np.random.default_rng([seed, 1812])
    q = rng.normal(0.0, 1.0, (num_dim + 1, num_classes, len(clusters)))
    spread = np.arange(1, num_dim + 1) ** -0.6  # the square root of Sigma's diagonal
    centres = [rng.normal(rng.normal(0.0, 1.0), 1.0, len(clusters)) for _ in clusters]
    sizes = np.minimum(rng.lognormal(3.0, 2.0, num_clients).astype(int) + 5, 1000)
    train_x, train_y, train_client, test_x, test_y = [], [], [], [], []
    for client, n in enumerate(sizes):
        cluster = rng.choice(len(clusters), p=np.asarray(clusters) / sum(clusters))
        w = q @ rng.normal(centres[cluster], 0.1)
        mean = rng.normal(rng.normal(0.0, 1.0), 1.0, num_dim)
        x = mean + spread * rng.standard_normal((n, num_dim))  # N(mean, Sigma), Sigma diagonal
        logits = np.column_stack([np.ones(n), x]) @ w + rng.normal(0.0, 0.1, (n, num_classes))
        y = logits.argmax(axis=1)
        cut = max(1, int(round(train_share * n)))
        train_x.append(x[:cut]), train_y.append(y[:cut]), test_x.append(x[cut:]), test_y.append(y[cut:])
        train_client.append(np.full(cut, client))
    return {"train_x": np.concatenate(train_x).astype(np.float32), "train_y": np.concatenate(train_y),
            "test_x": np.concatenate(test_x).astype(np.float32), "test_y": np.concatenate(test_y),
            "train_client": np.concatenate(train_client), "num_classes": num_classes}
