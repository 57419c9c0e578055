"""fraudctl.data.replay.arrow: the pandas-free conversions between numpy, Python and Arrow agree with pyarrow's own,
on sliced arrays and with nulls too."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fraudctl.data.replay.arrow import (
    bools, fixed_width_strings, from_numpy, join, numbers, scalar, strings, valid, with_nulls,
)


def test_from_numpy_numbers_bools_and_nulls():
    assert from_numpy(np.array([1.5, 2.0, 4.0])).equals(pa.array([1.5, 2.0, 4.0]))
    values = np.array([1.5, 2.0, np.nan, 4.0])
    assert from_numpy(values, null=np.isnan(values)).to_pylist() == [1.5, 2.0, None, 4.0]
    flags = np.array([True, False, True, True, False, False, False, False, True])
    assert from_numpy(flags).to_pylist() == flags.tolist()
    assert from_numpy(np.arange(3, dtype=np.int8)).type == pa.int8()


def test_numpy_from_sliced_arrays_with_nulls():
    ints = pa.array([1, None, 3, 4, None, 6]).slice(1, 4)  # [None, 3, 4, None]
    assert numbers(ints, -1).tolist() == [-1, 3, 4, -1]
    assert valid(ints).tolist() == [False, True, True, False]
    floats = pa.array([0.5, 1.5, None]).slice(1)
    assert np.isnan(numbers(floats, np.nan)[1]) and numbers(floats, np.nan)[0] == 1.5
    flags = pa.array([True] * 9 + [None, False, True]).slice(8)  # crosses a byte of the bitmap
    assert bools(flags).tolist() == [True, False, False, True]
    assert numbers(pa.array([], pa.int64()), 0).tolist() == [] and bools(pa.array([], pa.bool_())).tolist() == []


def test_strings_and_scalars():
    assert strings(["a", None, "é", ""]).to_pylist() == ["a", None, "é", ""]
    assert strings([]).type == pa.string() and len(strings([])) == 0
    assert scalar("x") == pa.scalar("x") and scalar("x") is scalar("x")
    assert join(pa.array(["a", "b"]), "-", pa.array(["c", "d"])).to_pylist() == ["a-c", "b-d"]


def test_fixed_width_strings_equal_widths_or_not():
    days = np.datetime_as_string(np.array([0, 1, 17_622], dtype="datetime64[D]"))
    assert fixed_width_strings(days).to_pylist() == ["1970-01-01", "1970-01-02", "2018-04-01"]
    odd = np.datetime_as_string(np.array([-800_000, 0], dtype="datetime64[D]"))  # a year before 0
    assert fixed_width_strings(odd).to_pylist() == odd.tolist()
    assert fixed_width_strings(np.array([b"ab", b"cd"])).to_pylist() == ["ab", "cd"]


def test_with_nulls_on_a_slice_keeps_its_own_nulls():
    text = pa.array(["x", "a", None, "", "b"]).slice(1)  # ["a", None, "", "b"]
    out = with_nulls(text, np.array([False, False, True, False]))
    assert out.to_pylist() == ["a", None, None, "b"]
    assert pc.cast(with_nulls(pa.array(["1", ""]), np.array([False, True])), pa.int64()).to_pylist() == [1, None]
