"""Data: IDX reading, FedProx Synthetic generation, data sets and client partitions."""

from raysim.data.datasets import (
    DATASETS,
    Dataset,
    DatasetInfo,
    DatasetNotFoundError,
    find_cifar10_root,
    find_idx_dir,
    load_dataset,
)
from raysim.data.idx import DatasetError, content_md5, read_idx, write_idx
from raysim.data.pixels import PixelScale
from raysim.data.partitions import (
    IID,
    PARTITIONS,
    DirichletClasses,
    DirichletClients,
    LabelsPerClient,
    Natural,
    PartitionSpec,
    QuantitySkew,
    Sampled,
    Shards,
    label_histogram,
    partition,
)
from raysim.data.synthetic import SyntheticData, generate_synthetic

__all__ = [
    "DATASETS",
    "IID",
    "PARTITIONS",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DirichletClasses",
    "DirichletClients",
    "LabelsPerClient",
    "Natural",
    "PartitionSpec",
    "PixelScale",
    "QuantitySkew",
    "Sampled",
    "Shards",
    "SyntheticData",
    "content_md5",
    "find_cifar10_root",
    "find_idx_dir",
    "generate_synthetic",
    "label_histogram",
    "load_dataset",
    "partition",
    "read_idx",
    "write_idx",
]
