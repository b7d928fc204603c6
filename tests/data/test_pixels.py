"""Image data sets stay uint8; standardising them, in numpy or through the lookup table the
workers use, gives the float32 inputs the loaders used to store."""

from __future__ import annotations

import numpy as np

from raysim.data.pixels import PixelScale


def test_standardise_is_the_per_channel_formula_in_float32():
    scale = PixelScale((0.5, 0.25), (0.2, 0.4))
    pixels = np.array([[[[0, 255]], [[51, 102]]]], dtype=np.uint8)  # [1, C=2, 1, 2]
    expected = ((pixels.astype(np.float32) / np.float32(255)) - np.float32([0.5, 0.25]).reshape(2, 1, 1)) \
        / np.float32([0.2, 0.4]).reshape(2, 1, 1)
    out = scale.standardise(pixels)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)


def test_the_lookup_table_holds_standardise_of_every_value_in_every_channel():
    scale = PixelScale((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))
    table = scale.lookup_table()
    assert table.shape == (3 * 256,) and table.dtype == np.float32
    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 3, 5, 5), dtype=np.uint8)
    looked_up = table[pixels.astype(np.int64) + 256 * np.arange(3).reshape(3, 1, 1)]
    np.testing.assert_array_equal(looked_up, scale.standardise(pixels))
