"""Data set loading: the real Fashion-MNIST, search order, verification, errors, caching."""

from pathlib import Path

import numpy as np
import pytest

from raysim.data import datasets
from raysim.data.datasets import (
    CONTENT_MD5,
    DATASETS,
    DatasetError,
    DatasetNotFoundError,
    find_idx_dir,
    load_dataset,
)
from raysim.data.idx import content_md5, write_idx
from raysim.data.pixels import PixelScale
from raysim.data.partitions import Natural, partition

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No RAYSIM_DATA, an empty system folder and HOME, so only the test's files exist."""
    monkeypatch.delenv("RAYSIM_DATA", raising=False)
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", tmp_path / "system")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def write_fake_idx(directory, n_train=12, n_test=4, gz=False, seed=0):
    """Writes a tiny (Fashion-)MNIST look-alike; its size is not official, so MD5 is not checked."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_test, dtype=np.uint8))
    for name, array in zip(IDX_NAMES, arrays):
        write_idx(directory / (name + (".gz" if gz else "")), array)
    return arrays


@pytest.fixture(scope="module")
def fashion():
    if not FASHION_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist not installed")
    return load_dataset("fashion_mnist", root=str(FASHION_DIR))


def test_real_fashion_mnist_content_md5s_match_the_table():
    if not FASHION_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist not installed")
    for name in IDX_NAMES:
        assert content_md5(FASHION_DIR / f"{name}.gz") == CONTENT_MD5["fashion_mnist"][name]


def test_real_fashion_mnist_shapes_and_labels(fashion):
    assert fashion.train_x.shape == (60000, 1, 28, 28) and fashion.train_x.dtype == np.uint8  # pixels, 47 MB
    assert fashion.test_x.shape == (10000, 1, 28, 28) and fashion.test_x.dtype == np.uint8
    assert fashion.pixels == PixelScale((0.2860,), (0.3530,))
    assert fashion.train_y.dtype == np.int64 and fashion.test_y.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(fashion.train_y), [6000] * 10)
    assert fashion.num_classes == 10 and fashion.input_shape == (1, 28, 28)
    assert fashion.natural_parts is None


def test_real_fashion_mnist_is_standardised_where_read(fashion):
    inputs = fashion.inputs(fashion.train_x)
    assert inputs.dtype == np.float32
    assert abs(float(inputs.mean())) < 0.01
    assert abs(float(inputs.std()) - 1) < 0.01


def test_loading_twice_returns_the_same_object(fashion):
    assert load_dataset("fashion_mnist", root=str(FASHION_DIR)) is fashion


@pytest.mark.parametrize("gz", [False, True])
def test_fake_subset_loads_exactly_and_normalised(isolated, gz):
    train_x, train_y, test_x, test_y = write_fake_idx(isolated / "data", gz=gz)
    data = load_dataset("mnist", root=str(isolated / "data"))
    np.testing.assert_array_equal(data.train_y, train_y)
    np.testing.assert_array_equal(data.test_y, test_y)
    np.testing.assert_array_equal(data.train_x[:, 0], train_x)  # the pixels as stored
    np.testing.assert_allclose(data.inputs(data.train_x)[:, 0] * 0.3081 + 0.1307, train_x / 255, atol=1e-6)
    assert data.test_x.shape == (4, 1, 28, 28)


def test_search_order_root_beats_env_beats_system(isolated, monkeypatch):
    for place in ("root", "env", "system"):
        write_fake_idx(isolated / place / "fashion-mnist")
    monkeypatch.setenv("RAYSIM_DATA", str(isolated / "env"))
    assert find_idx_dir("fashion_mnist", str(isolated / "root")) == isolated / "root" / "fashion-mnist"
    assert find_idx_dir("fashion_mnist", None) == isolated / "env" / "fashion-mnist"
    monkeypatch.delenv("RAYSIM_DATA")
    assert find_idx_dir("fashion_mnist", None) == isolated / "system" / "fashion-mnist"


def test_root_may_be_the_folder_itself_or_torchvision_layout(isolated):
    write_fake_idx(isolated / "flat")
    write_fake_idx(isolated / "tv" / "MNIST" / "raw", gz=True)
    assert find_idx_dir("mnist", str(isolated / "flat")) == isolated / "flat"
    assert find_idx_dir("mnist", str(isolated / "tv")) == isolated / "tv" / "MNIST" / "raw"


def test_missing_dataset_error_lists_places_and_fixes(isolated, monkeypatch):
    monkeypatch.setenv("RAYSIM_DATA", str(isolated / "env"))
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("fashion_mnist", root=str(isolated / "root"))
    message = str(error.value)
    for expected in ("apt-get install dataset-fashion-mnist", "RAYSIM_DATA", "data.download = true",
                     str(isolated / "root"), str(isolated / "env"), str(isolated / "system" / "fashion-mnist"),
                     str(isolated / "home" / ".cache" / "raysim")):
        assert expected in message
    assert isinstance(error.value, FileNotFoundError)


def test_full_size_file_with_wrong_content_rejected(isolated):
    write_fake_idx(isolated / "data")
    write_idx(isolated / "data" / "train-labels-idx1-ubyte", np.zeros(60000, dtype=np.uint8))
    expected = CONTENT_MD5["fashion_mnist"]["train-labels-idx1-ubyte"]
    with pytest.raises(ValueError, match=f"train-labels-idx1-ubyte.*content MD5 [0-9a-f]{{32}}.*{expected}"):
        load_dataset("fashion_mnist", root=str(isolated / "data"))


def test_image_and_label_counts_must_match(isolated):
    write_fake_idx(isolated / "data")
    write_idx(isolated / "data" / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="test images"):
        load_dataset("mnist", root=str(isolated / "data"))


def test_download_uses_torchvision_into_root(isolated, monkeypatch):
    import torchvision.datasets

    class FakeFashionMNIST:  # stands in for the network: writes what torchvision would
        def __init__(self, root, train, download):
            write_fake_idx(Path(root) / "FashionMNIST" / "raw", gz=True, seed=5)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    data = load_dataset("fashion_mnist", root=str(isolated / "dl"), download=True)
    assert data.train_x.shape == (12, 1, 28, 28)
    assert find_idx_dir("fashion_mnist", str(isolated / "dl")) == isolated / "dl" / "FashionMNIST" / "raw"


def test_failed_download_names_data_download(isolated, monkeypatch):
    import torchvision.datasets

    def offline(root, train, download):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DatasetNotFoundError, match="data.download = true: downloading mnist .* failed.*RAYSIM_DATA"):
        load_dataset("mnist", download=True)


def test_cifar10_missing_is_a_clear_error(isolated):
    with pytest.raises(DatasetNotFoundError, match=r"cifar10 not found(.|\n)*RAYSIM_DATA(.|\n)*download"):
        load_dataset("cifar10", root=str(isolated / "nothing"))


def test_synthetic_has_natural_parts():
    data = load_dataset("synthetic", seed=3, num_devices=7)
    assert data.input_shape == (60,) and data.train_x.shape[1:] == (60,)
    assert len(data.natural_parts) == 7 and len(data.test_y) == len(data.test_x)
    assert sum(len(p) for p in data.natural_parts) == len(data.train_y)
    parts = partition(data.train_y, 7, Natural(), seed=0, natural=data.natural_parts)
    assert [len(p) for p in parts] == [len(p) for p in data.natural_parts]
    assert load_dataset("synthetic", seed=3, num_devices=7) is data
    assert load_dataset("synthetic", seed=4, num_devices=7) is not data


def test_registry_and_unknown_name():
    assert set(DATASETS) == {"fashion_mnist", "mnist", "cifar10", "synthetic"}
    with pytest.raises(ValueError, match="name must be one of"):
        load_dataset("imagenet")


def test_labels_out_of_range_are_a_dataset_error(isolated):
    write_fake_idx(isolated / "data")
    write_idx(isolated / "data" / "train-labels-idx1-ubyte", np.full(12, 200, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"train labels must be in \[0, 10\), got 200 to 200"):
        load_dataset("mnist", root=str(isolated / "data"))


def test_a_corrupt_gzip_file_exits_2_naming_it(isolated, capsys):
    from raysim.cli import main
    from tests.conftest import tiny_table
    import tomli_w

    write_fake_idx(isolated / "data", gz=True)
    damaged = isolated / "data" / "t10k-images-idx3-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:40])
    scenario = isolated / "s.toml"
    scenario.write_text(tomli_w.dumps(tiny_table(data={"dataset": "mnist", "partition": "iid", "num_clients": 4,
                                                       "root": str(isolated / "data")})))
    assert main(["run", str(scenario), "--results", str(isolated / "results"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "t10k-images-idx3-ubyte.gz: cannot be read" in err and "Traceback" not in err
    assert not (isolated / "results").exists()


def test_offline_download_exits_2_naming_data_download(isolated, monkeypatch, capsys):
    import urllib.error

    import tomli_w
    import torchvision.datasets

    from raysim.cli import main
    from tests.conftest import tiny_table

    def offline(root, train, download):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    scenario = isolated / "s.toml"
    scenario.write_text(tomli_w.dumps(tiny_table(data={"dataset": "fashion_mnist", "partition": "iid",
                                                       "download": True, "root": str(isolated / "dl")})))
    assert main(["validate", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert "data.download = true: downloading fashion_mnist" in err and "Traceback" not in err
