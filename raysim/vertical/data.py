"""Vertical data sets: one table of people by columns, split into the parties' shares.

A table is ``features [N, C, W]`` (N people, C columns, W values per column: 1 for tabular data,
28 pixels for an image column of Fashion-MNIST), labels ``[N]`` and a held-out flag per person.
Each party gets the columns it is assigned, for its own rows only, under its own ids in its own
shuffled order, so the parties must align rows by PSI before they can train:

- ``overlap`` of the people are held by every party; the rest are dealt out one party each
  (they exist at one party only and PSI drops them);
- ids are distinct random integers, the same person having the same id at every party.

Data sets:

- ``breast``: scikit-learn's bundled Wisconsin breast cancer, z-scored over all 569 rows with the
  population std (ddof = 0) as FATE's ``breast_hetero_{guest,host}.csv`` are; FATE gives the label
  party sklearn columns 20-29 and the other party columns 0-19;
- ``fashion_mnist``: the IDX files through ``raysim.data``, one column per image column (28);
  its own test set is the held-out set;
- ``synthetic``: Gaussian columns and a label from a random linear model, for any number of
  parties and columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from raysim.seeding import Stream, rng

ID_COLUMN = "id"


@dataclass(frozen=True)
class Table:
    """The whole data set before it is split: no party ever holds this."""

    features: np.ndarray  # [N, C, W] float32
    labels: np.ndarray  # [N] int64
    held_out: np.ndarray  # [N] bool: a test row
    num_classes: int


@dataclass(frozen=True)
class Share:
    """What one party holds: its ids, its columns for its own rows, and, at the label party,
    the labels and held-out flags of its rows."""

    ids: np.ndarray  # [n] int64, the party's own order
    features: np.ndarray  # [n, D] float32: its columns, flattened
    labels: np.ndarray | None = None
    held_out: np.ndarray | None = None


def num_columns(dataset: str, synthetic_columns: int) -> int:
    """Columns of a data set, known without loading it (for checks at load)."""
    return {"breast": 30, "fashion_mnist": 28, "synthetic": synthetic_columns}[dataset]


def num_classes(dataset: str) -> int:
    return 10 if dataset == "fashion_mnist" else 2


def load_table(dataset: str, *, seed: int, root: str | None = None, rows: int = 1000, columns: int = 20,
               test_fraction: float = 0.25, max_train: int = 0, max_test: int = 0) -> Table:
    """Builds a data set's table; ``max_train``/``max_test`` (0 = all) keep a seeded subset."""
    if dataset == "breast":
        table = _breast(seed, test_fraction)
    elif dataset == "fashion_mnist":
        table = _fashion(root)
    else:
        table = _synthetic(seed, rows, columns, test_fraction)
    return _subset(table, seed, max_train, max_test)


def split(table: Table, columns: list[list[int]], *, label_party: int, overlap: float,
          seed: int) -> tuple[list[Share], np.ndarray]:
    """Each party's share (module docstring), ``columns[k]`` being party k's column indices, and
    the id of each person of the table (for the central reference, which sees everything)."""
    n = len(table.labels)
    draw = rng(seed, Stream.VERTICAL_DATA, 0)
    people = draw.permutation(n)
    shared = round(overlap * n)
    rows = [list(people[:shared]) for _ in columns]
    for i, person in enumerate(people[shared:]):
        rows[i % len(columns)].append(person)
    ids = draw.choice(10**12, size=n, replace=False).astype(np.int64)
    shares = []
    for k, cols in enumerate(columns):
        mine = rng(seed, Stream.VERTICAL_DATA, 1, k).permutation(np.asarray(rows[k], dtype=np.int64))
        features = table.features[mine][:, cols].reshape(len(mine), -1).astype(np.float32)
        if k == label_party:
            shares.append(Share(ids[mine], features, table.labels[mine], table.held_out[mine]))
        else:
            shares.append(Share(ids[mine], features))
    return shares, ids


def _stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A held-out flag per row: ``fraction`` of each class, drawn from the seed."""
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        chosen = rng(seed, Stream.VERTICAL_DATA, 2, int(c)).permutation(members)
        held[chosen[: round(fraction * len(members))]] = True
    return held


def _breast(seed: int, test_fraction: float) -> Table:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0, ddof=0)
    y = data.target.astype(np.int64)
    return Table(x[:, :, None].astype(np.float32), y, _stratified_holdout(y, test_fraction, seed), 2)


def _fashion(root: str | None) -> Table:
    from raysim.data import load_dataset

    ds = load_dataset("fashion_mnist", root=root or None)
    x = ds.inputs(np.concatenate([ds.train_x, ds.test_x]))[:, 0].transpose(0, 2, 1)  # [N, image column, pixel]
    y = np.concatenate([ds.train_y, ds.test_y])
    held = np.r_[np.zeros(len(ds.train_y), bool), np.ones(len(ds.test_y), bool)]
    return Table(np.ascontiguousarray(x), y, held, 10)


def _synthetic(seed: int, rows: int, columns: int, test_fraction: float) -> Table:
    draw = rng(seed, Stream.VERTICAL_DATA, 3)
    x = draw.standard_normal((rows, columns)).astype(np.float32)
    w = draw.standard_normal(columns) / np.sqrt(columns)
    y = (x @ w + 0.3 * draw.standard_normal(rows) > 0).astype(np.int64)
    return Table(x[:, :, None], y, _stratified_holdout(y, test_fraction, seed), 2)


def _subset(table: Table, seed: int, max_train: int, max_test: int) -> Table:
    keep = []
    for held, cap in ((False, max_train), (True, max_test)):
        rows = np.flatnonzero(table.held_out == held)
        if cap and cap < len(rows):
            rows = np.sort(rng(seed, Stream.VERTICAL_DATA, 4, int(held)).choice(rows, cap, replace=False))
        keep.append(rows)
    rows = np.concatenate(keep)
    if len(rows) == len(table.labels):
        return table
    return Table(table.features[rows], table.labels[rows], table.held_out[rows], table.num_classes)
