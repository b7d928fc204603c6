"""Client partitions: invariants for every kind, then each kind's defining property."""

import numpy as np
import pytest

from raysim.data.partitions import (
    IID,
    PARTITIONS,
    DirichletClasses,
    DirichletClients,
    LabelsPerClient,
    Natural,
    QuantitySkew,
    Shards,
    label_histogram,
    partition,
)

NUM_CLIENTS = 20
LABELS = np.random.default_rng(123).integers(0, 10, 1000)
SPECS = [IID(), Shards(), DirichletClasses(), DirichletClients(), LabelsPerClient(), QuantitySkew()]


def natural_parts(n=len(LABELS), k=NUM_CLIENTS):
    return np.array_split(np.random.default_rng(7).permutation(n), k)


def run(spec, labels=LABELS, num_clients=NUM_CLIENTS, seed=0, **kwargs):
    if isinstance(spec, Natural):
        kwargs.setdefault("natural", natural_parts(len(labels), num_clients))
    return partition(labels, num_clients, spec, seed=seed, **kwargs)


ALL_SPECS = SPECS + [Natural()]


def test_registry_lists_every_kind():
    assert set(PARTITIONS) == {"iid", "shards", "dirichlet", "dirichlet_clients", "labels", "quantity", "natural", "sampled"}
    assert all(cls.kind == kind for kind, cls in PARTITIONS.items())


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.kind)
def test_parts_are_sorted_disjoint_int64_indices(spec):
    parts = run(spec)
    assert len(parts) == NUM_CLIENTS
    assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in parts)
    used = np.concatenate(parts)
    assert np.unique(used).size == used.size
    assert used.min() >= 0 and used.max() < len(LABELS)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.kind)
def test_same_seed_same_partition(spec):
    for a, b in zip(run(spec), run(spec)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.kind)
def test_different_seed_differs(spec):
    first, second = run(spec, seed=0), run(spec, seed=1)
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("spec", [IID(), Shards(), DirichletClients()], ids=lambda s: s.kind)
def test_equal_size_kinds(spec):
    assert {len(p) for p in run(spec)} == {len(LABELS) // NUM_CLIENTS}


def test_iid_histograms_near_uniform():
    labels = np.repeat(np.arange(10), 6000)
    histogram = label_histogram(labels, run(IID(), labels, 100), 10)
    assert histogram.sum() == 60000 and histogram.min() > 25 and histogram.max() < 100


def test_shards_reproduce_fedavg_pathological_split():
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 6000))
    parts = run(Shards(shards_per_client=2), labels, 100)
    assert [len(p) for p in parts] == [600] * 100
    classes_per_client = (label_histogram(labels, parts, 10) > 0).sum(axis=1)
    assert classes_per_client.max() <= 2
    assert np.mean(classes_per_client == 1) < 0.3


def test_shards_explicit_size_leaves_the_rest_out():
    parts = run(Shards(shards_per_client=3, shard_size=10))
    assert [len(p) for p in parts] == [30] * NUM_CLIENTS
    # Shards not aligned with class boundaries may straddle two labels.
    assert (label_histogram(LABELS, parts, 10) > 0).sum(axis=1).max() <= 2 * 3


def mean_labels_per_client(spec, share=0.01):
    histogram = label_histogram(LABELS, run(spec), 10)
    return np.mean((histogram / np.maximum(histogram.sum(1, keepdims=True), 1)) > share) * 10


@pytest.mark.parametrize("spec_class, field", [(DirichletClasses, "beta"), (DirichletClients, "alpha")])
def test_dirichlet_skew_follows_concentration(spec_class, field):
    skewed = mean_labels_per_client(spec_class(**{field: 0.05}))
    uniform = mean_labels_per_client(spec_class(**{field: 1000.0}))
    assert skewed < 4 and uniform > 9


def test_dirichlet_min_samples_enforced_by_redrawing():
    parts = run(DirichletClasses(beta=0.5, min_samples=20))
    assert min(len(p) for p in parts) >= 20


def test_dirichlet_min_samples_unreachable_is_a_clear_error():
    with pytest.raises(ValueError, match="min_samples=49 not reached"):
        run(DirichletClasses(beta=0.01, min_samples=49))
    with pytest.raises(ValueError, match="min_samples must be <= 50"):
        run(DirichletClasses(min_samples=51))


def test_dirichlet_clients_uses_class_frequencies_and_drains_pools():
    labels = np.concatenate([np.zeros(900, int), np.ones(100, int)])
    parts = run(DirichletClients(alpha=0.1), labels, 10)
    histogram = label_histogram(labels, parts, 2)
    assert histogram.sum() == 1000 and set(histogram.sum(1)) == {100}


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_labels_per_client_exactly_k(k):
    parts = run(LabelsPerClient(labels=k))
    histogram = label_histogram(LABELS, parts, 10)
    assert set((histogram > 0).sum(axis=1)) == {k}
    assert all(histogram[i, i % 10] > 0 for i in range(NUM_CLIENTS))


def test_labels_per_client_splits_each_class_equally_among_holders():
    histogram = label_histogram(LABELS, run(LabelsPerClient(labels=3)), 10)
    for column in histogram.T:
        held = column[column > 0]
        assert held.max() - held.min() <= 1


def test_labels_more_than_classes_rejected():
    with pytest.raises(ValueError, match=r"labels must be <= num_classes \(10\), got 11"):
        run(LabelsPerClient(labels=11))


def test_quantity_skew_unequal_sizes_iid_labels():
    labels = np.repeat(np.arange(10), 6000)
    parts = run(QuantitySkew(beta=0.5, min_samples=10), labels, 10)
    sizes = np.array([len(p) for p in parts])
    assert sizes.min() >= 10 and sizes.max() > 2 * sizes.min()
    histogram = label_histogram(labels, parts, 10)
    big = histogram[sizes >= 1000]
    assert len(big) and np.all(np.abs(big / big.sum(1, keepdims=True) - 0.1) < 0.03)


def test_natural_returns_the_given_parts():
    given = natural_parts()
    for got, expected in zip(run(Natural(), natural=given), given):
        np.testing.assert_array_equal(got, np.sort(expected))


@pytest.mark.parametrize("natural, match", [
    (None, "needs a data set with a natural split"),
    (natural_parts(k=5), r"num_clients must equal the number of natural parts \(5\)"),
    ([np.array([0, 1]), np.array([1, 2])] + natural_parts(k=18), "disjoint"),
    ([np.array([5000])] + natural_parts(k=19), "must index into"),
])
def test_natural_errors(natural, match):
    with pytest.raises(ValueError, match=match):
        partition(LABELS, NUM_CLIENTS, Natural(), seed=0, natural=natural)


@pytest.mark.parametrize("make_spec, field", [
    (lambda: Shards(shards_per_client=0), "shards_per_client"),
    (lambda: Shards(shard_size=0), "shard_size"),
    (lambda: DirichletClasses(beta=0), "beta"),
    (lambda: DirichletClasses(min_samples=-1), "min_samples"),
    (lambda: DirichletClients(alpha=-1.0), "alpha"),
    (lambda: LabelsPerClient(labels=0), "labels"),
    (lambda: QuantitySkew(beta=float("nan")), "beta"),
    (lambda: QuantitySkew(min_samples=1.5), "min_samples"),
])
def test_spec_validation_names_the_field(make_spec, field):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        make_spec()


def test_specs_are_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        Shards(3)
    with pytest.raises(AttributeError):
        Shards().shards_per_client = 3


@pytest.mark.parametrize("call, match", [
    (lambda: partition(LABELS, 1001, IID(), seed=0), r"num_clients must be <= the number of samples \(1000\)"),
    (lambda: partition(LABELS, 0, IID(), seed=0), "num_clients must be an integer >= 1"),
    (lambda: partition(LABELS, 10, Shards(shard_size=60), seed=0), "shard_size must satisfy"),
    (lambda: partition(LABELS, 600, Shards(), seed=0), "shard_size must satisfy"),
    (lambda: partition(LABELS, 10, IID(), seed=0, num_classes=5), "num_classes must be an integer >= 10"),
    (lambda: partition(LABELS.astype(float), 10, IID(), seed=0), "labels must be"),
    (lambda: partition(LABELS, 10, "iid", seed=0), "spec must be one of"),
])
def test_impossible_requests_are_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_label_histogram_shape_and_counts():
    parts = [np.array([0, 1]), np.array([], dtype=np.int64)]
    histogram = label_histogram(np.array([2, 2, 0]), parts, 4)
    assert histogram.dtype == np.int64
    np.testing.assert_array_equal(histogram, [[0, 0, 2, 0], [0, 0, 0, 0]])


def test_sampled_partition_serves_more_clients_than_examples():
    from raysim.data import Sampled

    labels = np.arange(1000) % 10
    parts = partition(labels, 5000, Sampled(size=6), seed=3)
    assert len(parts) == 5000 and all(len(p) == 6 and len(set(p)) == 6 for p in parts)
    again = partition(labels, 5000, Sampled(size=6), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    counts = np.bincount(np.concatenate(parts), minlength=1000)
    assert counts.min() > 5 and counts.max() < 60  # roughly uniform use of the data
    with pytest.raises(ValueError, match="size must be <="):
        partition(labels, 10, Sampled(size=2000), seed=0)


def test_sampled_clients_larger_than_the_birthday_bound_are_drawn_without_redraws():
    from raysim.data import Sampled

    labels = np.arange(1000) % 10
    parts = partition(labels, 5, Sampled(size=999), seed=0)
    assert all(len(np.unique(p)) == 999 for p in parts)


def test_sampled_populations_beyond_memory_are_refused():
    from raysim.data import Sampled

    with pytest.raises(ValueError, match="example indices exceed 100,000,000"):
        partition(np.arange(100) % 10, 10**8, Sampled(size=2), seed=0)
