"""Client partitions of a labelled training set.

Each partition kind is a frozen, keyword-only spec dataclass that validates its
own fields; :func:`partition` turns a spec plus a label array into one sorted
index array per client. The kinds follow the papers that introduced them:

* ``iid`` and ``shards`` -- McMahan et al., "Communication-Efficient Learning
  of Deep Networks from Decentralized Data" (FedAvg), arXiv:1602.05629.
* ``dirichlet``, ``labels`` (#C=k) and ``quantity`` -- Li et al., "Federated
  Learning on Non-IID Data Silos: An Experimental Study" (NIID-Bench),
  arXiv:2102.02079.
* ``dirichlet_clients`` -- Hsu et al., "Measuring the Effects of Non-Identical
  Data Distribution for Federated Visual Classification", arXiv:1909.06335.
* ``natural`` -- the data set's own split, e.g. FedProx Synthetic's devices
  (arXiv:1812.06127).

All randomness comes from ``np.random.default_rng([seed, stream])``, so a
partition is a pure function of its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

_STREAM = 0x9A27
# Bound on redraws for min_samples; enough for any feasible request seen in
# practice, small enough that an infeasible one fails in about a second.
_MAX_REDRAWS = 1000
# Bound on the index entries of a ``sampled`` partition (clients x size), which, unlike the
# disjoint kinds, is not bounded by the data set: 10^7 clients of 10 examples at most.
_MAX_SAMPLED = 10**8


def _require_int(name: str, value: object, minimum: int) -> None:
    """Raises ValueError unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _require_positive(name: str, value: object) -> None:
    """Raises ValueError unless ``value`` is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _split_by_proportions(indices: np.ndarray, proportions: np.ndarray) -> list[np.ndarray]:
    """Cuts ``indices`` at ``floor(cumsum(p) * n)``, as NIID-Bench does."""
    cuts = (np.cumsum(proportions)[:-1] * len(indices)).astype(np.int64)
    return np.split(indices, cuts)


def _class_pools(labels: np.ndarray, num_classes: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Returns each class's example indices in a seeded random order."""
    return [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]


def _gather(pieces_per_client: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Concatenates each client's pieces (an empty client gets an empty array)."""
    return [np.concatenate(pieces) if pieces else np.empty(0, np.int64) for pieces in pieces_per_client]


def _redraw_until_min(draw: Callable[[], list[np.ndarray]], min_samples: int, hint: str) -> list[np.ndarray]:
    """Repeats ``draw`` until every client has ``min_samples``, a bounded number of times.

    Redrawing (rather than topping clients up) keeps the draw an exact sample
    of the Dirichlet conditioned on the minimum, which is what NIID-Bench does.
    """
    for _ in range(_MAX_REDRAWS):
        parts = draw()
        if min(len(p) for p in parts) >= min_samples:
            return parts
    raise ValueError(
        f"min_samples={min_samples} not reached in {_MAX_REDRAWS} draws; lower min_samples or {hint}"
    )


def _check_min_samples_feasible(min_samples: int, num_clients: int, n: int) -> None:
    """Fails fast when min_samples cannot be met whatever the draw."""
    if min_samples * num_clients > n:
        raise ValueError(
            f"min_samples must be <= {n // num_clients} for {num_clients} clients over {n} samples, "
            f"got {min_samples}"
        )


@dataclass(frozen=True, kw_only=True)
class IID:
    """Uniformly random, near-equal shards (FedAvg's IID split: 100 x 600 on MNIST)."""

    kind: ClassVar[str] = "iid"

    def split(self, labels: np.ndarray, num_clients: int, num_classes: int,
              rng: np.random.Generator, natural: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """Shuffles all indices and cuts them into ``num_clients`` near-equal parts."""
        return np.array_split(rng.permutation(len(labels)), num_clients)


@dataclass(frozen=True, kw_only=True)
class Shards:
    """Pathological non-IID label shards (FedAvg, arXiv:1602.05629).

    Examples are sorted by label, cut into ``num_clients * shards_per_client``
    shards of ``shard_size`` and dealt to clients at random, so each client sees
    at most ``shards_per_client`` labels. 100 clients x 2 shards of 300 on
    MNIST's 60k reproduces the paper.

    Attributes:
        shards_per_client: Shards each client receives.
        shard_size: Examples per shard; ``None`` means
            ``N // (num_clients * shards_per_client)``. Examples that do not fit
            in a shard are left out, chosen at random so no class is favoured.
    """

    kind: ClassVar[str] = "shards"
    by_label: ClassVar[bool] = True  # needs class labels (refused for a regression task)
    shards_per_client: int = 2
    shard_size: int | None = None

    def __post_init__(self) -> None:
        _require_int("shards_per_client", self.shards_per_client, 1)
        if self.shard_size is not None:
            _require_int("shard_size", self.shard_size, 1)

    def split(self, labels: np.ndarray, num_clients: int, num_classes: int,
              rng: np.random.Generator, natural: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """Sorts by label (seeded tie-break), cuts shards, deals them randomly."""
        num_shards = num_clients * self.shards_per_client
        shard_size = len(labels) // num_shards if self.shard_size is None else self.shard_size
        if shard_size < 1 or shard_size * num_shards > len(labels):
            raise ValueError(
                f"shard_size must satisfy 1 <= num_clients*shards_per_client*shard_size <= {len(labels)} "
                f"samples, got {num_clients}*{self.shards_per_client}*{shard_size}"
            )
        kept = rng.permutation(len(labels))[: shard_size * num_shards]
        by_label = kept[np.argsort(labels[kept], kind="stable")]
        shards = by_label.reshape(num_shards, shard_size)
        dealt = rng.permutation(num_shards).reshape(num_clients, self.shards_per_client)
        return [shards[row].ravel() for row in dealt]


@dataclass(frozen=True, kw_only=True)
class DirichletClasses:
    """Label skew, per class over clients (NIID-Bench, arXiv:2102.02079).

    For each class c, ``p_c ~ Dir(beta * 1_N)`` over the N clients and class c's
    examples are split by ``p_c``. Small ``beta`` concentrates each class on few
    clients; large ``beta`` approaches IID. Client sizes vary. (NIID-Bench's code
    also zeroes p for clients already holding more than N_samples / N; that
    balancing heuristic is not in the paper's definition and is not applied.)

    Attributes:
        beta: Dirichlet concentration, > 0.
        min_samples: The whole draw is repeated (seeded, at most 1000 times)
            until every client holds at least this many examples. The default
            10 is NIID-Bench's: a small ``beta`` otherwise leaves clients empty,
            and an empty client cannot train when it is selected.
    """

    kind: ClassVar[str] = "dirichlet"
    by_label: ClassVar[bool] = True  # needs class labels (refused for a regression task)
    beta: float = 0.5
    min_samples: int = 10

    def __post_init__(self) -> None:
        _require_positive("beta", self.beta)
        _require_int("min_samples", self.min_samples, 0)

    def split(self, labels: np.ndarray, num_clients: int, num_classes: int,
              rng: np.random.Generator, natural: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """Draws per-class client proportions, redrawing until min_samples holds."""
        _check_min_samples_feasible(self.min_samples, num_clients, len(labels))
        class_indices = [np.flatnonzero(labels == c) for c in range(num_classes)]

        def draw() -> list[np.ndarray]:
            pieces: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
            for indices in class_indices:
                proportions = rng.dirichlet(np.full(num_clients, float(self.beta)))
                for client, piece in enumerate(_split_by_proportions(rng.permutation(indices), proportions)):
                    pieces[client].append(piece)
            return _gather(pieces)

        return _redraw_until_min(draw, self.min_samples, "raise beta")


def _draw_class_counts(rng: np.random.Generator, mix: np.ndarray, available: np.ndarray,
                       size: int) -> np.ndarray:
    """Draws ``size`` class labels from ``mix`` without exceeding ``available``.

    Draws landing on an exhausted class are redrawn from ``mix`` renormalised
    over the classes that still have examples, which is exactly sampling one
    example at a time and renormalising whenever a class pool runs dry. If the
    mix puts no mass on any remaining class, remaining pool sizes are used.
    """
    counts = np.zeros_like(available)
    while (missing := size - counts.sum()) > 0:
        free = available - counts
        weights = np.where(free > 0, mix, 0.0)
        if weights.sum() <= 0:
            weights = free.astype(np.float64)
        counts += np.minimum(rng.multinomial(missing, weights / weights.sum()), free)
    return counts


@dataclass(frozen=True, kw_only=True)
class DirichletClients:
    """Label skew, per client over classes (Hsu et al. 2019, arXiv:1909.06335).

    Each client draws a class mix ``q ~ Dir(alpha * prior)``, with ``prior`` the
    data set's class frequencies, and takes ``N // num_clients`` examples drawn
    from ``q`` without replacement from per-class pools. Clients are filled in
    order; when a class pool runs dry, ``q`` is renormalised over the classes
    that remain, so later clients' mixes drift from their draw when ``alpha`` is
    small. Unlike ``dirichlet``, all clients have the same size.

    Attributes:
        alpha: Dirichlet concentration, > 0 (alpha -> inf is IID, -> 0 one class).
    """

    kind: ClassVar[str] = "dirichlet_clients"
    by_label: ClassVar[bool] = True  # needs class labels (refused for a regression task)
    alpha: float = 0.5

    def __post_init__(self) -> None:
        _require_positive("alpha", self.alpha)

    def split(self, labels: np.ndarray, num_clients: int, num_classes: int,
              rng: np.random.Generator, natural: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """Fills equal-size clients from class pools following each client's mix."""
        pools = _class_pools(labels, num_classes, rng)
        sizes = np.array([len(p) for p in pools])
        present = sizes > 0
        prior = sizes[present] / sizes.sum()
        used = np.zeros_like(sizes)
        parts = []
        for _ in range(num_clients):
            mix = np.zeros(num_classes)
            mix[present] = rng.dirichlet(float(self.alpha) * prior)
            take = _draw_class_counts(rng, mix, sizes - used, len(labels) // num_clients)
            parts.append(np.concatenate([pool[u:u + t] for pool, u, t in zip(pools, used, take)]))
            used += take
        return parts


@dataclass(frozen=True, kw_only=True)
class LabelsPerClient:
    """Each client holds exactly ``labels`` classes: #C=k (NIID-Bench, arXiv:2102.02079).

    Client i holds label ``i % num_classes`` plus ``labels - 1`` distinct others
    chosen at random, as NIID-Bench does; every class is then split equally
    among the clients holding it (a class no client holds goes unused).

    Attributes:
        labels: Distinct labels per client, 1 <= labels <= num_classes.
    """

    kind: ClassVar[str] = "labels"
    by_label: ClassVar[bool] = True  # needs class labels (refused for a regression task)
    labels: int = 2

    def __post_init__(self) -> None:
        _require_int("labels", self.labels, 1)

    def split(self, labels: np.ndarray, num_clients: int, num_classes: int,
              rng: np.random.Generator, natural: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """Assigns label sets, then splits each class among its holders."""
        if self.labels > num_classes:
            raise ValueError(f"labels must be <= num_classes ({num_classes}), got {self.labels}")
        holders: list[list[int]] = [[] for _ in range(num_classes)]
        for client in range(num_clients):
            first = client % num_classes
            others = rng.choice(np.delete(np.arange(num_classes), first), self.labels - 1, replace=False)
            for c in (first, *others):
                holders[c].append(client)
        pieces: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for pool, clients in zip(_class_pools(labels, num_classes, rng), holders):
            if clients:
                for client, piece in zip(clients, np.array_split(pool, len(clients))):
                    pieces[client].append(piece)
        return _gather(pieces)


@dataclass(frozen=True, kw_only=True)
class QuantitySkew:
    """Quantity skew with IID labels (NIID-Bench, arXiv:2102.02079).

    Client sizes follow ``Dir(beta * 1_N)`` over a shuffled data set.

    Attributes:
        beta: Dirichlet concentration, > 0; small means very unequal sizes.
        min_samples: The draw is repeated (seeded, at most 1000 times) until
            every client holds at least this many examples (NIID-Bench uses 10).
    """

    kind: ClassVar[str] = "quantity"
    beta: float = 0.5
    min_samples: int = 1

    def __post_init__(self) -> None:
        _require_positive("beta", self.beta)
        _require_int("min_samples", self.min_samples, 0)

    def split(self, labels: np.ndarray, num_clients: int, num_classes: int,
              rng: np.random.Generator, natural: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """Cuts a shuffled index list at Dirichlet-distributed sizes."""
        _check_min_samples_feasible(self.min_samples, num_clients, len(labels))
        order = rng.permutation(len(labels))

        def draw() -> list[np.ndarray]:
            return _split_by_proportions(order, rng.dirichlet(np.full(num_clients, float(self.beta))))

        return _redraw_until_min(draw, self.min_samples, "raise beta")


@dataclass(frozen=True, kw_only=True)
class Natural:
    """The data set's own split (e.g. FedProx Synthetic's devices), one part per client."""

    kind: ClassVar[str] = "natural"

    def split(self, labels: np.ndarray, num_clients: int, num_classes: int,
              rng: np.random.Generator, natural: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """Validates and returns the data set's parts."""
        if natural is None:
            raise ValueError("partition kind 'natural' needs a data set with a natural split "
                             "(e.g. synthetic); this one has none")
        if len(natural) != num_clients:
            raise ValueError(f"num_clients must equal the number of natural parts ({len(natural)}), "
                             f"got {num_clients}")
        parts = [np.asarray(p, dtype=np.int64) for p in natural]
        flat = np.concatenate(parts) if parts else np.empty(0, np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= len(labels)):
            raise ValueError(f"natural parts must index into the {len(labels)} labels")
        if np.unique(flat).size != flat.size:
            raise ValueError("natural parts must be disjoint")
        return parts


@dataclass(frozen=True, kw_only=True)
class Sampled:
    """Every client draws ``size`` examples uniformly, independently of the others.

    Examples are distinct within a client but may be shared between clients, so a population
    far larger than the data set can be simulated (10^5 clients of 6 examples from 60k), which
    is what scale experiments need; every other kind gives each example to one client at most.

    Attributes:
        size: Examples per client, >= 1.
    """

    kind: ClassVar[str] = "sampled"
    disjoint: ClassVar[bool] = False
    size: int = 6

    def __post_init__(self) -> None:
        _require_int("size", self.size, 1)

    def split(self, labels: np.ndarray, num_clients: int, num_classes: int,
              rng: np.random.Generator, natural: Sequence[np.ndarray] | None) -> list[np.ndarray]:
        """Uniform draws per client; rows that drew an example twice are redrawn whole.

        Redrawing is quick while size^2 <= N (a row is then distinct with probability about
        exp(-size^2 / 2N) >= 0.6); beyond that, each client draws without replacement instead,
        which never needs a redraw.
        """
        if self.size > len(labels):
            raise ValueError(f"size must be <= the number of samples ({len(labels)}), got {self.size}")
        if num_clients * self.size > _MAX_SAMPLED:
            raise ValueError(f"num_clients x size = {num_clients * self.size:,} example indices exceed "
                             f"{_MAX_SAMPLED:,} (about 800 MB): lower num_clients or size")
        if self.size ** 2 > len(labels):
            return [rng.choice(len(labels), self.size, replace=False) for _ in range(num_clients)]
        draws = rng.integers(0, len(labels), size=(num_clients, self.size))
        while (repeated := (np.diff(np.sort(draws, axis=1), axis=1) == 0).any(axis=1)).any():
            draws[repeated] = rng.integers(0, len(labels), size=(int(repeated.sum()), self.size))
        return list(draws)


PartitionSpec = IID | Shards | DirichletClasses | DirichletClients | LabelsPerClient | QuantitySkew | Natural | Sampled

PARTITIONS: dict[str, type] = {
    cls.kind: cls
    for cls in (IID, Shards, DirichletClasses, DirichletClients, LabelsPerClient, QuantitySkew, Natural, Sampled)
}


def _as_labels(labels: np.ndarray) -> np.ndarray:
    """Checks that labels are a 1-D array of non-negative integers."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
        raise ValueError(f"labels must be a 1-D array of non-negative integers, got dtype {labels.dtype} "
                         f"shape {labels.shape}")
    return labels


def partition(
    labels: np.ndarray,
    num_clients: int,
    spec: PartitionSpec,
    *,
    seed: int,
    natural: Sequence[np.ndarray] | None = None,
    num_classes: int | None = None,
) -> list[np.ndarray]:
    """Splits a labelled training set among clients.

    Args:
        labels: int [N] training labels.
        num_clients: Number of clients, 1 <= num_clients <= N.
        spec: One of the spec classes in :data:`PARTITIONS`.
        seed: Non-negative seed; the result is a pure function of the inputs.
        natural: The data set's own parts, required by (and only used by)
            :class:`Natural`.
        num_classes: Number of classes; defaults to ``max(labels) + 1``.

    Returns:
        One sorted int64 index array into ``labels`` per client; no index
        appears twice (some kinds leave examples out), except with
        :class:`Sampled`, whose clients may share examples.

    Raises:
        ValueError: If an argument is invalid or the partition is impossible.
    """
    labels = _as_labels(labels)
    _require_int("num_clients", num_clients, 1)
    if num_clients > len(labels) and getattr(spec, "disjoint", True):
        raise ValueError(f"num_clients must be <= the number of samples ({len(labels)}), got {num_clients}")
    _require_int("seed", seed, 0)
    if not isinstance(spec, tuple(PARTITIONS.values())):
        raise ValueError(f"spec must be one of {sorted(PARTITIONS)} partition specs, got {spec!r}")
    minimum_classes = int(labels.max()) + 1
    if num_classes is None:
        num_classes = minimum_classes
    _require_int("num_classes", num_classes, minimum_classes)
    parts = spec.split(labels, num_clients, num_classes, np.random.default_rng([seed, _STREAM]), natural)
    return [np.sort(p).astype(np.int64) for p in parts]


def label_histogram(labels: np.ndarray, parts: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Counts each client's examples per class: int64 [clients, classes].

    Used to report and test how skewed a partition is.
    """
    labels = np.asarray(labels)
    rows = [np.bincount(labels[p], minlength=num_classes) for p in parts]
    return np.array(rows, dtype=np.int64).reshape(len(parts), num_classes)
