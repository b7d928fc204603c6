"""IDX reading: round trips, gzip detection, and errors that name the file."""

import gzip
import hashlib

import numpy as np
import pytest

from raysim.data.idx import DatasetError, content_md5, read_idx, write_idx


@pytest.mark.parametrize("filename", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_images_round_trip(tmp_path, filename):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / filename, images)
    back = read_idx(tmp_path / filename)
    assert back.dtype == np.uint8 and back.shape == (5, 28, 28)
    np.testing.assert_array_equal(back, images)


def test_labels_header_is_the_official_layout(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(tmp_path / "labels", labels)
    raw = (tmp_path / "labels").read_bytes()
    assert raw[:8] == bytes.fromhex("00000801") + (5).to_bytes(4, "big")
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), labels)


def test_multibyte_dtype_is_big_endian_on_disk_and_native_in_memory(tmp_path):
    values = np.array([1, -2, 70000], dtype=np.int32)
    write_idx(tmp_path / "ints", values)
    assert (tmp_path / "ints").read_bytes()[-4:] == (70000).to_bytes(4, "big")
    back = read_idx(tmp_path / "ints")
    assert back.dtype == np.int32 and back.dtype.isnative
    np.testing.assert_array_equal(back, values)


def test_gzip_detected_by_content_not_suffix(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "plain", labels)
    (tmp_path / "renamed").write_bytes(gzip.compress((tmp_path / "plain").read_bytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "renamed"), labels)


def test_content_md5_ignores_compression(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "l", labels)
    write_idx(tmp_path / "l.gz", labels)
    expected = hashlib.md5((tmp_path / "l").read_bytes()).hexdigest()
    assert content_md5(tmp_path / "l") == content_md5(tmp_path / "l.gz") == expected


def test_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "bogus"
    path.write_bytes(b"\x12\x34\x08\x01" + bytes(8))
    with pytest.raises(ValueError, match="bogus.*not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("cut", [1, 10, 20])
def test_truncated_file_names_the_file(tmp_path, cut):
    path = tmp_path / "short.gz"
    write_idx(path, np.zeros((4, 2, 2), dtype=np.uint8))
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:-cut]))
    with pytest.raises(ValueError, match="short.gz"):
        read_idx(path)


def test_trailing_bytes_rejected(tmp_path):
    path = tmp_path / "long"
    write_idx(path, np.zeros(4, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="long.*length mismatch"):
        read_idx(path)


def test_write_rejects_dtype_without_idx_code(tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("damage", [lambda raw: raw[: len(raw) // 2],  # truncated gzip stream
                                    lambda raw: raw[:10] + bytes(len(raw) - 10),  # corrupt deflate data
                                    lambda raw: raw[:-8] + b"\xff" * 8])  # bad CRC trailer
def test_damaged_gzip_is_a_dataset_error_naming_the_file(tmp_path, damage):
    path = tmp_path / "images.gz"
    write_idx(path, np.arange(64, dtype=np.uint8).reshape(4, 4, 4))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DatasetError, match="images.gz: cannot be read as a"):
        read_idx(path)


def test_format_errors_are_dataset_errors(tmp_path):
    path = tmp_path / "bogus"
    path.write_bytes(b"\x00\x00\x08\x02" + bytes(3))
    with pytest.raises(DatasetError, match="bogus: IDX header truncated"):
        read_idx(path)
