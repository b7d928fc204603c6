"""Reader for the IDX format used by MNIST and Fashion-MNIST.

The format (LeCun et al., "Gradient-based learning applied to document
recognition", 1998; reused by Fashion-MNIST, Xiao et al. 2017, arXiv:1708.07747)
is a big-endian header -- two zero bytes, a dtype byte, a dimension count, then
one 32-bit size per dimension -- followed by the raw payload. Images use magic
0x00000803 (n, rows, cols) and labels 0x00000801 (n).

Files may be gzipped or plain. Distributions (Debian's ``dataset-fashion-mnist``
for one) re-compress the files, so the gzip bytes differ from upstream's; only
the hash of the *decompressed* content is stable, which is what
:func:`content_md5` returns.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from pathlib import Path

import numpy as np

_GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype byte -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DatasetError(ValueError):
    """A data set's file is there but unusable (corrupt, truncated, mis-sized); names the file."""


def decompressed_bytes(path: Path) -> bytes:
    """Returns the file's content, gunzipped when it is a gzip stream.

    Detection is by the gzip magic bytes rather than the ``.gz`` suffix, so a
    file renamed by a mirror or package manager is still read correctly.

    Raises:
        DatasetError: If the file cannot be read or its gzip stream is damaged.
    """
    try:
        raw = Path(path).read_bytes()
        return gzip.decompress(raw) if raw[:2] == _GZIP_MAGIC else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot be read as a (gzipped) IDX file ({exc}); "
                           f"delete it and fetch the data set again") from exc


def parse_idx(data: bytes, source: Path | str) -> np.ndarray:
    """Decodes IDX bytes into a native-endian array.

    Args:
        data: The decompressed file content.
        source: Where the bytes came from; only used to name it in errors.

    Returns:
        A writable array whose shape is the header's dimensions.

    Raises:
        DatasetError: If the magic number is not an IDX one or the payload does
            not have exactly the length the header announces (a truncated
            download, for instance).
    """
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"{source}: not an IDX file (bad magic {data[:4].hex()!r})")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DatasetError(f"{source}: IDX header truncated ({len(data)} bytes, need {header_len})")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header_len + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise DatasetError(
            f"{source}: IDX payload length mismatch: header {shape} needs {expected} bytes, "
            f"file has {len(data)}"
        )
    flat = np.frombuffer(data, dtype=dtype, offset=header_len)
    return flat.astype(dtype.newbyteorder("=")).reshape(shape)


def read_idx(path: Path) -> np.ndarray:
    """Reads an IDX file (gzipped or plain) into a native-endian array."""
    return parse_idx(decompressed_bytes(path), path)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``.

    Lets users and tests make small subsets of MNIST-style data sets that the
    loaders read like the real files.

    Raises:
        ValueError: If the array's dtype has no IDX code.
    """
    codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}
    array = np.asarray(array)
    if array.dtype not in codes:
        raise ValueError(f"array dtype must be one of {sorted(str(d) for d in codes)}, got {array.dtype}")
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, codes[array.dtype], array.ndim, *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    Path(path).write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)


def content_md5(path: Path) -> str:
    """MD5 hex digest of the decompressed content; stable across re-gzipping."""
    return hashlib.md5(decompressed_bytes(path)).hexdigest()
