"""pyarrow without pandas: the conversions replay needs between Python, numpy and Arrow, and byte scans.

pyarrow imports pandas (0.2-0.3 s, most of a small replay) the first time it converts a Python or numpy
value (`pa.array`, `pa.scalar`, a Python literal handed to a compute function) or an array to numpy
(`Array.to_numpy`). replay needs none of pandas, so every such conversion on its path goes through these
helpers, which build arrays from buffers and read buffers as numpy views. A unit test replays a file in a
fresh interpreter and fails when pandas was imported.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Byte classes for scans of a string column's data buffer (a numpy view, no copy): most chunks have none of
# these, and one pass over the bytes is far cheaper than a per-value kernel.
NEWLINE = np.zeros(256, dtype=bool)
NEWLINE[0x0A] = True
JSON_ESCAPE = np.zeros(256, dtype=bool)
JSON_ESCAPE[:0x20] = True
JSON_ESCAPE[[0x22, 0x5C]] = True  # " and \
MAY_NEED_TRIM = np.zeros(256, dtype=bool)
MAY_NEED_TRIM[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20]] = True
MAY_NEED_TRIM[0x80:] = True  # non-ASCII: could be Unicode white space


def is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


# --- numpy -> Arrow ----------------------------------------------------------------------------------------
def _bitmap(bits: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.packbits(bits, bitorder="little"))


def from_numpy(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """A bool or numeric numpy array as Arrow (numbers without a copy); `null` marks nulls."""
    values = np.ascontiguousarray(values)
    validity = _bitmap(~null) if null is not None and null.any() else None
    if values.dtype == np.bool_:
        return pa.Array.from_buffers(pa.bool_(), len(values), [validity, _bitmap(values)])
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [validity, pa.py_buffer(values)])


def strings(values: Sequence[str | None]) -> pa.Array:
    """Python strings (None: null) as an Arrow string array."""
    n = len(values)
    encoded = [b"" if value is None else value.encode() for value in values]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
    null = np.fromiter((value is None for value in values), dtype=bool, count=n)
    validity = _bitmap(~null) if null.any() else None
    return pa.Array.from_buffers(pa.large_string(), n, [validity, pa.py_buffer(offsets),
                                                        pa.py_buffer(b"".join(encoded))]).cast(pa.string())


def fixed_width_strings(values: np.ndarray) -> pa.Array:
    """A numpy array of ASCII text (bytes or str, e.g. np.datetime_as_string's output) as Arrow strings;
    values all of one length are copied in one go."""
    lengths = np.char.str_len(values)
    width = int(lengths[0]) if len(values) else 0
    if not (lengths == width).all():  # e.g. dates before year 1000 or after 9999
        return strings([v.decode() if isinstance(v, bytes) else v for v in values.tolist()])
    data = np.ascontiguousarray(values.astype(f"S{width}")) if values.dtype != f"S{width}" else values
    offsets = np.arange(len(values) + 1, dtype=np.int32) * width
    return pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def with_nulls(arr: pa.Array, null: np.ndarray) -> pa.Array:
    """A string array with the rows of `null` made null (their bytes stay, unread)."""
    if not null.any():
        return arr
    bits = np.concatenate([np.zeros(arr.offset, dtype=bool), ~null])
    if arr.null_count:
        bits[arr.offset:] &= valid(arr)
    return pa.Array.from_buffers(arr.type, len(arr), [_bitmap(bits), *arr.buffers()[1:]], offset=arr.offset)


@lru_cache(maxsize=256)
def scalar(text: str) -> pa.Scalar:
    """A string scalar for compute functions (a Python str would be converted through pandas)."""
    return strings([text])[0]


def join(*pieces: pa.Array | str) -> pa.Array:
    """Row-wise concatenation of string arrays and constant strings."""
    return pc.binary_join_element_wise(*[scalar(p) if isinstance(p, str) else p for p in pieces], scalar(""))


# --- Arrow -> numpy ----------------------------------------------------------------------------------------
def valid(arr: pa.Array) -> np.ndarray:
    """True where a value is not null."""
    n = len(arr)
    if not arr.null_count:
        return np.ones(n, dtype=bool)
    bits = np.frombuffer(arr.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little", count=arr.offset + n)[arr.offset:].astype(bool)


def bools(arr: pa.Array) -> np.ndarray:
    """A boolean array as numpy; nulls read as False."""
    n = len(arr)
    if not n:
        return np.zeros(0, dtype=bool)
    bits = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
    values = np.unpackbits(bits, bitorder="little", count=arr.offset + n)[arr.offset:].astype(bool)
    return values & valid(arr) if arr.null_count else values


def numbers(arr: pa.Array, fill: float | int) -> np.ndarray:
    """An integer or floating-point array as numpy (a view when it has no nulls); nulls become `fill`."""
    kind = arr.type
    code = "f" if pa.types.is_floating(kind) else "i" if pa.types.is_signed_integer(kind) else "u"
    dtype = np.dtype(f"{code}{kind.bit_width // 8}")
    n = len(arr)
    if not n:
        return np.zeros(0, dtype=dtype)
    values = np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset:arr.offset + n]
    return np.where(valid(arr), values, fill) if arr.null_count else values


def string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data bytes) of a string array's values, as numpy views."""
    buffers = arr.buffers()
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=dtype)[arr.offset:arr.offset + len(arr) + 1] if len(arr) \
        else np.zeros(1, dtype=dtype)
    if buffers[2] is None or not len(arr):
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0]:offsets[-1]]


def str_objects(arr: pa.Array) -> list[str]:
    """A string array as Python strings (to_pylist: faster than to_numpy().tolist() in pyarrow 25, and
    pandas-free)."""
    return arr.to_pylist()


def bytes_any(arr: pa.Array, byte_class: np.ndarray) -> bool:
    """Whether any byte of a string column's values is in the class (True for other types: be careful)."""
    if not is_text(arr.type):
        return True
    _, data = string_parts(arr)
    if not data.size:
        return False
    # The range of the bytes first (two fast reductions): most columns (digits, dates) hold no byte of the
    # class anywhere in it, and then the per-byte lookup, 30 times slower, is not needed.
    low, high = int(data.min()), int(data.max())
    if not byte_class[low:high + 1].any():
        return False
    return bool(byte_class[data].any())
