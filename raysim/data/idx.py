"""Reader for the IDX format used by MNIST and Fashion-MNIST.

The format (LeCun et al., "Gradient-based learning applied to document
recognition", 1998; reused by Fashion-MNIST, Xiao et al. 2017, arXiv:1708.07747)
is a big-endian header -- two zero bytes, a dtype byte, a dimension count, then
one 32-bit size per dimension -- followed by the raw payload. Images use magic
0x00000803 (n, rows, cols) and labels 0x00000801 (n).

Files may be gzipped or plain. Distributions (Debian's ``dataset-fashion-mnist``
for one) re-compress the files, so the gzip bytes differ from upstream's; only
the hash of the *decompressed* content is stable, which is what
:func:`content_md5` returns. Nothing is ever decompressed beyond the size the header
promises (:func:`decompressed_bytes`), so a gzip bomb costs a few bytes, not the machine.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

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


# The largest IDX content read (header and payload, decompressed): 1 GiB, 20 times the official
# Fashion-MNIST training images. A header promising more is refused before anything is read.
MAX_IDX_BYTES = 2**30


def decompressed_bytes(path: Path) -> bytes:
    """Returns the IDX file's content, gunzipped when it is a gzip stream, never more than its
    header promises.

    The header's dimensions give the content's size before the payload is read: at most that
    many bytes (and one more, to detect a longer stream) are ever decompressed, so a small
    gzip that expands to gigabytes (a gzip bomb) is refused after a few bytes, not after
    filling memory. Detection is by the gzip magic bytes rather than the ``.gz`` suffix, so a
    file renamed by a mirror or package manager is still read correctly.

    Raises:
        DatasetError: If the file cannot be read, its gzip stream is damaged, its header is not
            an IDX one or promises more than :data:`MAX_IDX_BYTES`, or the content is longer
            or shorter than the header promises; the message names the file and the sizes.
    """
    try:
        with Path(path).open("rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if raw.read(2) == _GZIP_MAGIC else raw
            raw.seek(0)
            header = _read_header(stream, path)
            expected = _promised_size(header, path)
            body = stream.read(expected - len(header) + 1)  # one byte more: a longer stream shows
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot be read as a (gzipped) IDX file ({exc}); "
                           f"delete it and fetch the data set again") from exc
    _check_length(len(header) + len(body), expected, path)
    return header + body


def _magic(magic: bytes, source: Path | str) -> tuple[np.dtype, int]:
    """The dtype and dimension count of an IDX magic number (its first 4 bytes)."""
    if len(magic) < 4 or magic[:2] != b"\x00\x00" or magic[2] not in _IDX_DTYPES:
        raise DatasetError(f"{source}: not an IDX file (bad magic {magic[:4].hex()!r})")
    return _IDX_DTYPES[magic[2]], magic[3]


def _read_header(stream: BinaryIO, path: Path) -> bytes:
    """The magic number and the dimension sizes, read alone (at most 4 + 4 x 255 bytes)."""
    magic = stream.read(4)
    _, ndim = _magic(magic, path)
    return _whole_header(magic + stream.read(4 * ndim), ndim, path)


def _whole_header(header: bytes, ndim: int, source: Path | str) -> bytes:
    if len(header) < 4 + 4 * ndim:
        raise DatasetError(f"{source}: IDX header truncated ({len(header)} bytes, need {4 + 4 * ndim})")
    return header[:4 + 4 * ndim]


def _shape(header: bytes) -> tuple[int, ...]:
    return tuple(int(d) for d in np.frombuffer(header, dtype=">u4", offset=4))


def _promised_size(header: bytes, source: Path | str) -> int:
    """The content size (header and payload) an IDX header promises; DatasetError naming the
    file beyond :data:`MAX_IDX_BYTES`."""
    dtype, _ = _magic(header, source)
    shape = _shape(header)
    size = len(header) + math.prod(shape) * dtype.itemsize
    if size > MAX_IDX_BYTES:
        raise DatasetError(f"{source}: the IDX header promises dimensions {shape}, {size} bytes, beyond the "
                           f"limit of {MAX_IDX_BYTES} bytes (1 GiB); not read")
    return size


def _check_length(found: int, expected: int, source: Path | str) -> None:
    """Refuses content longer or shorter than its header promises (``found`` is at most one byte
    over: the reader stops there)."""
    if found != expected:
        has = f"more (reading stopped at {found})" if found > expected else f"{found}"
        raise DatasetError(f"{source}: IDX payload length mismatch: the header promises {expected} bytes, "
                           f"the content has {has}; delete the file and fetch the data set again")


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
    dtype, ndim = _magic(data, source)
    header = _whole_header(data, ndim, source)
    _check_length(len(data), _promised_size(header, source), source)
    flat = np.frombuffer(data, dtype=dtype, offset=len(header))
    return flat.astype(dtype.newbyteorder("=")).reshape(_shape(header))


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
