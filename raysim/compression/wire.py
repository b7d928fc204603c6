"""What an encoded update is on the wire: a list of flat arrays, framed, and bit-packed codes.

A payload is a list of 1-D numpy arrays (values, indices, packed codes, scales). ``pack``
frames it the way a message format would (a field count, then per field a dtype code and a
length before the raw little-endian bytes), so the wire size counts the framing as well as the
payload; ``unpack`` reads it back. The receiver decodes what ``unpack`` returns, never the
sender's arrays, so the bytes counted are the bytes that carried the update.
"""

from __future__ import annotations

import struct
from typing import Sequence

import numpy as np

# dtype code on the wire -> dtype; bfloat16 travels as its uint16 bit pattern
DTYPES = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 3: np.dtype("<u4"), 4: np.dtype("<u8"),
          5: np.dtype("<f2"), 6: np.dtype("<f4"), 7: np.dtype("<f8")}
_CODES = {dtype: code for code, dtype in DTYPES.items()}
MESSAGE_HEADER = struct.calcsize("<I")  # the field count
FIELD_HEADER = struct.calcsize("<BI")  # dtype code, element count


def wire_size(field_bytes: Sequence[int]) -> int:
    """The framed size of a payload whose fields hold these many bytes."""
    return MESSAGE_HEADER + sum(FIELD_HEADER + int(n) for n in field_bytes)


def pack(fields: Sequence[np.ndarray]) -> bytes:
    """Frames a payload: ``<I count`` then, per field, ``<B dtype code, <I length`` and the data."""
    parts = [struct.pack("<I", len(fields))]
    for field in fields:
        array = np.ascontiguousarray(field).reshape(-1)
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        parts += [struct.pack("<BI", _CODES[little.dtype], little.size), little.tobytes()]
    return b"".join(parts)


def unpack(data: bytes) -> list[np.ndarray]:
    """The fields of a framed payload, in order (read-only views of ``data``)."""
    (count,), offset = struct.unpack_from("<I", data), MESSAGE_HEADER
    fields = []
    for _ in range(count):
        code, length = struct.unpack_from("<BI", data, offset)
        offset += FIELD_HEADER
        dtype = DTYPES[code]
        fields.append(np.frombuffer(data, dtype=dtype, count=length, offset=offset))
        offset += length * dtype.itemsize
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} stray bytes after the last field")
    return fields


def packed_size(count: int, bits: int) -> int:
    """Bytes of ``count`` codes of ``bits`` bits each, packed end to end."""
    return -(-count * bits // 8)


def pack_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """Packs non-negative integer codes below ``2**bits`` into bytes, most significant bit first."""
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    planes = (codes.astype(np.uint32)[:, None] >> shifts) & 1
    return np.packbits(planes.astype(np.uint8).reshape(-1))


def unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits` for ``count`` codes."""
    planes = np.unpackbits(packed, count=count * bits).reshape(count, bits).astype(np.uint32)
    return (planes << np.arange(bits - 1, -1, -1, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
