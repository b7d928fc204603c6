"""Data sets as numpy arrays, loaded once per process: images as their uint8 pixels with the
statistics that standardise them (``pixels.py``), other data as normalised float32.

Supported: Fashion-MNIST (Xiao et al. 2017, arXiv:1708.07747), MNIST (LeCun et
al. 1998), CIFAR-10 (Krizhevsky 2009) and FedProx's Synthetic(alpha, beta)
(Li et al. 2020, arXiv:1812.06127).

(Fashion-)MNIST are read from IDX files found, in order, in an explicit
``root``, in ``$RAYSIM_DATA``, in ``/usr/share/datasets/<dirname>`` (Debian's
``dataset-fashion-mnist`` package) and in ``~/.cache/raysim``; each base is
tried as the folder itself, as ``<base>/<dirname>`` and in torchvision's
``<base>/<Class>/raw`` layout, so a previous ``download=True`` is found again.
Only with ``download=True`` does a missing data set get fetched (torchvision).

Content MD5s (of the decompressed files, see :mod:`raysim.data.idx`) are
verified only for files of the official size. A subset file (fewer images,
hence a different size) is accepted unverified, so tests and users can work on
small slices; a full-size file with the wrong content (corruption, or MNIST in
the Fashion-MNIST folder) is rejected.

Loaded data sets are cached by what determines their content (resolved folder,
or the generator's parameters) and shared: callers must not modify the arrays.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from raysim.data.idx import DatasetError, decompressed_bytes, parse_idx
from raysim.data.pixels import PixelScale
from raysim.data.synthetic import generate_synthetic

ENV_VAR = "RAYSIM_DATA"
SYSTEM_DATA_DIR = Path("/usr/share/datasets")

# MD5 of the decompressed upstream IDX files.
CONTENT_MD5: dict[str, dict[str, str]] = {
    "fashion_mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
}

# Decompressed sizes of the official files (identical for MNIST and Fashion-MNIST).
_OFFICIAL_SIZES = {
    "train-images-idx3-ubyte": 16 + 60000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10000,
}

# CIFAR-10 training-set per-channel statistics (the std is the true pixel std,
# not the often-copied 0.2023/0.1994/0.2010).
_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# CIFAR-10's batch files are about 30 MB each (10,000 images). torchvision reads a whole file for
# its MD5 before unpickling it, so a larger file is refused by its size before anything reads it.
CIFAR10_MAX_FILE_BYTES = 2**26
MAX_CLASSES = 2**16
"""The most classes a data set may have: 65,536. What a run allocates per class grows with it
(the model's output layer, the clients' label histogram: 1,000 clients x 65,536 classes is
0.5 GB), so a class count read from a file (a table's largest label + 1, a loader's
``num_classes``) is held to it before anything is allocated: a label of 1e11 asked for 745 GiB.
It is above every task raysim ships (LEAF's 80 characters, FEMNIST's 62) and GPT-2's 50,257
tokens."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a data set is, for listings and model construction; ``load``, for a data set added
    to :data:`DATASETS` (docs/architecture.md), returns its ``Dataset`` given ``root`` and
    ``download``. The built-in data sets have their own loaders below."""

    description: str
    input_shape: tuple[int, ...]
    num_classes: int
    load: Callable[..., Dataset] | None = None


DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo("Fashion-MNIST: 60k/10k 28x28 grey clothing images "
                                 "(Xiao et al. 2017, arXiv:1708.07747)", (1, 28, 28), 10),
    "mnist": DatasetInfo("MNIST: 60k/10k 28x28 grey handwritten digits (LeCun et al. 1998)", (1, 28, 28), 10),
    "cifar10": DatasetInfo("CIFAR-10: 50k/10k 32x32 colour images (Krizhevsky 2009)", (3, 32, 32), 10),
    "synthetic": DatasetInfo("FedProx Synthetic(alpha, beta), 60 features, power-law devices "
                             "(Li et al. 2020, arXiv:1812.06127)", (60,), 10),
}


@dataclass(frozen=True)
class _IdxSource:
    """Where an IDX data set lives and how its pixels are standardised."""

    dirname: str
    mean: float
    std: float
    apt_package: str | None


_IDX_SOURCES = {
    "fashion_mnist": _IdxSource("fashion-mnist", 0.2860, 0.3530, "dataset-fashion-mnist"),
    "mnist": _IdxSource("mnist", 0.1307, 0.3081, None),
}

_TORCHVISION_CLASS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": "CIFAR10"}

# Dataset field -> IDX base name.
_IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Dataset:
    """A data set as arrays ready for training.

    Attributes:
        name: Key in :data:`DATASETS`.
        train_x: float32 [N, *input_shape], normalised; or, with ``pixels``, uint8 pixels.
        train_y: int64 [N].
        test_x: float32 [M, *input_shape], normalised like train_x; or uint8 pixels likewise.
        test_y: int64 [M].
        num_classes: Number of classes.
        input_shape: Shape of one example, e.g. (1, 28, 28) or (60,).
        natural_parts: The data set's own client split (Synthetic's devices'
            train index arrays), or None.
        pixels: For an image data set kept as uint8 pixels, how they become model inputs
            (``pixels.py``: a quarter of the memory of float32); None when the arrays are
            model inputs already.
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    natural_parts: tuple[np.ndarray, ...] | None = None
    pixels: PixelScale | None = None

    def __post_init__(self) -> None:
        check_class_count(self.num_classes, len(self.train_y) + len(self.test_y), f"data set {self.name!r}")

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """Model inputs from rows of ``train_x`` or ``test_x`` (standardised pixels, or as they are)."""
        return x if self.pixels is None else self.pixels.standardise(x)


def check_class_count(num_classes: int, rows: int, where: str) -> None:
    """Refuses a class count beyond ``MAX_CLASSES`` (DatasetError naming ``where``), before
    anything is allocated per class."""
    if num_classes > MAX_CLASSES:
        raise DatasetError(f"{where}: {num_classes} classes for {rows} rows, beyond the limit of {MAX_CLASSES} "
                           "classes (MAX_CLASSES): class labels are numbered 0..K-1; renumber them, or set [task] "
                           "kind = 'regression' for values")


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are not where we looked; the message says how to get them.

    (Files that are found but damaged raise :class:`raysim.data.idx.DatasetError`.)
    """


def _cache_dir() -> Path:
    """Default download folder; read at call time so HOME changes are honoured."""
    return Path.home() / ".cache" / "raysim"


def _user_bases(root: str | None) -> list[Path]:
    """The explicit root, then $RAYSIM_DATA, in search order."""
    env = os.environ.get(ENV_VAR)
    return [Path(p).expanduser() for p in (root, env) if p]


def _idx_candidates(name: str, root: str | None) -> list[Path]:
    """Every folder searched for an IDX data set, in order."""
    source = _IDX_SOURCES[name]

    def layouts(base: Path) -> list[Path]:
        return [base, base / source.dirname, base / _TORCHVISION_CLASS[name] / "raw"]

    user = [d for base in _user_bases(root) for d in layouts(base)]
    return user + [SYSTEM_DATA_DIR / source.dirname] + layouts(_cache_dir())


def _idx_file(directory: Path, base_name: str) -> Path | None:
    """The plain or gzipped file for ``base_name``; plain wins (no decompression)."""
    for candidate in (directory / base_name, directory / f"{base_name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _fix_hint(name: str) -> str:
    """How to obtain a missing data set."""
    apt = _IDX_SOURCES.get(name)
    ways = [f"`apt-get install {apt.apt_package}`"] if apt and apt.apt_package else []
    ways += [f"set data.root or the {ENV_VAR} environment variable to a folder holding the files",
             "set data.download = true (needs internet)"]
    return "; or ".join(ways)


def find_idx_dir(name: str, root: str | None) -> Path:
    """Finds the folder holding all four IDX files of ``name``.

    Args:
        name: "fashion_mnist" or "mnist".
        root: Explicit data folder (the folder itself or its parent), or None.

    Returns:
        The first folder, in search order, that holds all four files.

    Raises:
        ValueError: If ``name`` is not an IDX data set.
        DatasetNotFoundError: If no searched folder holds all four files.
    """
    if name not in _IDX_SOURCES:
        raise ValueError(f"name must be one of {sorted(_IDX_SOURCES)} for IDX data, got {name!r}")
    candidates = _idx_candidates(name, root)
    for directory in candidates:
        if all(_idx_file(directory, base) for base in _IDX_FILES.values()):
            return directory
    searched = "\n  ".join(str(d) for d in candidates)
    raise DatasetNotFoundError(
        f"{name} not found: no folder holds {', '.join(_IDX_FILES.values())} (plain or .gz). "
        f"Searched:\n  {searched}\nTo fix: {_fix_hint(name)}."
    )


def _read_verified(name: str, directory: Path, base_name: str) -> np.ndarray:
    """Reads one IDX file, checking its content MD5 when it has the official size."""
    path = _idx_file(directory, base_name)
    data = decompressed_bytes(path)
    if len(data) == _OFFICIAL_SIZES[base_name]:
        found, expected = hashlib.md5(data).hexdigest(), CONTENT_MD5[name][base_name]
        if found != expected:
            raise DatasetError(f"{path}: content MD5 {found} does not match the official {name} "
                               f"{base_name} MD5 {expected}; the file is corrupt or from another data set")
    return parse_idx(data, path)


def forget_loaded() -> None:
    """Drops the data sets this process keeps loaded for its next runs: once a Ray run has put
    its copy in the object store, the process that started it needs none of it (55 MB of
    pixels and labels for Fashion-MNIST)."""
    for loader in (_load_idx_dataset, _load_cifar10, _load_synthetic):
        loader.cache_clear()


@functools.lru_cache(maxsize=None)
def _load_idx_dataset(name: str, directory: Path) -> Dataset:
    """Reads and verifies the four IDX files in ``directory``."""
    source = _IDX_SOURCES[name]
    raw = {field: _read_verified(name, directory, base) for field, base in _IDX_FILES.items()}
    num_classes = DATASETS[name].num_classes
    for split in ("train", "test"):
        images, labels = raw[f"{split}_x"], raw[f"{split}_y"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (len(images),) or not len(images):
            raise DatasetError(f"{directory}: {split} images {images.shape} and labels {labels.shape} "
                               f"must be [n, 28, 28] and [n] with n >= 1")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise DatasetError(f"{directory}: {split} labels must be in [0, {num_classes}), "
                               f"got {labels.min()} to {labels.max()}")
    return Dataset(
        name=name,
        train_x=np.ascontiguousarray(raw["train_x"][:, None]),
        train_y=raw["train_y"].astype(np.int64),
        test_x=np.ascontiguousarray(raw["test_x"][:, None]),
        test_y=raw["test_y"].astype(np.int64),
        num_classes=num_classes,
        input_shape=DATASETS[name].input_shape,
        pixels=PixelScale((source.mean,), (source.std,)),
    )


def _download(name: str, root: str | None) -> None:
    """Fetches a data set with torchvision into ``root`` or the cache.

    The target is a searched base, in torchvision's layout, so the normal search
    finds the files afterwards (and in later runs without ``download``). One
    ``train=True`` call fetches the whole data set (train and test files).
    """
    from torchvision import datasets as tv_datasets

    base = Path(root).expanduser() if root else _cache_dir()
    try:
        getattr(tv_datasets, _TORCHVISION_CLASS[name])(root=str(base), train=True, download=True)
    except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError
        reason = " ".join(str(error).split())  # torchvision's messages span lines
        raise DatasetNotFoundError(f"data.download = true: downloading {name} into {base} failed "
                                   f"({reason}); without internet: {_fix_hint(name)}") from error


def find_cifar10_root(root: str | None) -> Path:
    """Finds the base folder holding ``cifar-10-batches-py`` (torchvision's layout).

    Raises:
        DatasetNotFoundError: If no searched folder holds it.
    """
    candidates = [*_user_bases(root), _cache_dir()]
    for base in candidates:
        if (base / "cifar-10-batches-py").is_dir():
            return base
    searched = "\n  ".join(str(b / "cifar-10-batches-py") for b in candidates)
    raise DatasetNotFoundError(f"cifar10 not found. Searched:\n  {searched}\nTo fix: {_fix_hint('cifar10')}.")


@functools.lru_cache(maxsize=None)
def _load_cifar10(base: Path) -> Dataset:
    """Loads CIFAR-10 through torchvision from ``base``; standardised per channel when read."""
    from torchvision.datasets import CIFAR10

    _check_cifar10_sizes(base / "cifar-10-batches-py")
    try:
        train, test = (CIFAR10(str(base), train=flag, download=False) for flag in (True, False))
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as error:
        # torchvision's "Dataset not found or corrupted", or a damaged batch file
        raise DatasetError(f"cifar10 could not be loaded from {base} ({error}). "
                           f"To fix: {_fix_hint('cifar10')}.") from error

    def pixels(split) -> np.ndarray:
        return np.ascontiguousarray(split.data.transpose(0, 3, 1, 2))  # [N, H, W, C] -> [N, C, H, W]

    return Dataset(
        name="cifar10",
        train_x=pixels(train),
        train_y=np.asarray(train.targets, dtype=np.int64),
        test_x=pixels(test),
        test_y=np.asarray(test.targets, dtype=np.int64),
        num_classes=DATASETS["cifar10"].num_classes,
        input_shape=DATASETS["cifar10"].input_shape,
        pixels=PixelScale(_CIFAR10_MEAN, _CIFAR10_STD),
    )


def _check_cifar10_sizes(folder: Path) -> None:
    """Refuses a file of the CIFAR-10 folder beyond :data:`CIFAR10_MAX_FILE_BYTES`, naming it."""
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.stat().st_size > CIFAR10_MAX_FILE_BYTES:
            raise DatasetError(f"{path}: {path.stat().st_size} bytes, beyond the {CIFAR10_MAX_FILE_BYTES} bytes "
                               f"(64 MiB) a CIFAR-10 batch file can have; not read. To fix: {_fix_hint('cifar10')}.")


@functools.lru_cache(maxsize=None)
def _load_synthetic(seed: int, num_devices: int, alpha: float, beta: float, iid: bool) -> Dataset:
    """Generates Synthetic(alpha, beta); devices become the natural client split."""
    data = generate_synthetic(num_devices=num_devices, alpha=alpha, beta=beta, iid=iid, seed=seed)
    return Dataset(
        name="synthetic",
        train_x=data.train_x,
        train_y=data.train_y,
        test_x=data.test_x,
        test_y=data.test_y,
        num_classes=DATASETS["synthetic"].num_classes,
        input_shape=DATASETS["synthetic"].input_shape,
        natural_parts=data.device_train_indices,
    )


def _locate(name: str, find: Callable[[str | None], Path], root: str | None, download: bool) -> Path:
    """Runs the search, downloading first (when allowed) if it comes up empty."""
    try:
        return find(root).resolve()
    except DatasetNotFoundError:
        if not download:
            raise
    _download(name, root)
    return find(root).resolve()


def load_dataset(
    name: str,
    *,
    root: str | None = None,
    download: bool = False,
    seed: int = 0,
    num_devices: int = 30,
    synthetic_alpha: float = 1.0,
    synthetic_beta: float = 1.0,
    synthetic_iid: bool = False,
) -> Dataset:
    """Loads a data set, once per process.

    Args:
        name: A key of :data:`DATASETS`.
        root: Explicit data folder, searched first.
        download: Fetch with torchvision if not found locally (needs internet).
        seed: Seed of the synthetic generator (ignored by file-based data).
        num_devices: Synthetic devices (the paper uses 30).
        synthetic_alpha: Synthetic model heterogeneity alpha.
        synthetic_beta: Synthetic data heterogeneity beta.
        synthetic_iid: Generate Synthetic-IID instead.

    Returns:
        The data set; the same object for the same content in one process.

    Raises:
        ValueError: For an unknown name, bad parameters or corrupt files.
        DatasetNotFoundError: If the files are missing (message says the fix).
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    if DATASETS[name].load is not None:
        return DATASETS[name].load(root=root, download=download)
    if name == "synthetic":
        return _load_synthetic(seed, num_devices, synthetic_alpha, synthetic_beta, synthetic_iid)
    if name == "cifar10":
        return _load_cifar10(_locate(name, find_cifar10_root, root, download))
    return _load_idx_dataset(name, _locate(name, functools.partial(find_idx_dir, name), root, download))
