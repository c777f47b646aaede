"""COCO polygons and RLE through pycocotools, and the checks made before it runs."""

import numpy as np
import pytest

from anyref_ros.data.masks import (
    polygons_to_mask, rle_decode, rle_encode, segmentation_to_mask, xywh_to_box,
)


def test_polygon_square_covers_exact_pixels():
    m = polygons_to_mask([[2, 2, 6, 2, 6, 6, 2, 6]], 8, 8)
    expected = np.zeros((8, 8), dtype=bool)
    expected[2:6, 2:6] = True
    assert np.array_equal(m, expected)


def test_polygon_triangle_union_and_clipping():
    tri = polygons_to_mask([[0, 0, 8, 0, 4, 8]], 8, 8)
    assert tri[0].all() and tri[:, 0].sum() == 1 and tri[7].sum() == 0
    assert np.array_equal(tri, tri[:, ::-1])
    two = polygons_to_mask([[0, 0, 2, 0, 2, 2, 0, 2], [4, 4, 6, 4, 6, 6, 4, 6]], 8, 8)
    assert two.sum() == 8
    assert polygons_to_mask([[-5, -5, 50, -5, 50, 50, -5, 50]], 4, 6).all()
    with pytest.raises(ValueError, match="3"):
        polygons_to_mask([[0, 0, 1, 1]], 4, 4)


def test_rle_decode_hand_examples():
    # column-major runs [1, 2, 1, 2] of [[0, 1, 1], [1, 0, 1]]
    expected = np.array([[0, 1, 1], [1, 0, 1]], dtype=bool)
    assert np.array_equal(rle_decode({"size": [2, 3], "counts": [1, 2, 1, 2]}), expected)
    assert rle_encode(expected) == {"size": [2, 3], "counts": "1210"}
    assert np.array_equal(rle_decode({"size": [2, 3], "counts": b"1210"}), expected)
    # runs [1, 5, 2, 1]: the 4th value is stored as 1 - 5 = -4 -> 'L' (sign bit set)
    flat = np.array([0, 1, 1, 1, 1, 1, 0, 0, 1], dtype=bool)
    assert np.array_equal(rle_decode({"size": [3, 3], "counts": "152L"}), flat.reshape(3, 3).T)


def test_rle_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(100):
        m = rng.random((int(rng.integers(1, 12)), int(rng.integers(1, 12)))) < rng.random()
        for compressed in (True, False):
            assert np.array_equal(rle_decode(rle_encode(m, compressed)), m)
    big = np.zeros((300, 500), dtype=bool)
    big[10:290, 7:480] = True
    assert np.array_equal(rle_decode(rle_encode(big)), big)


def test_rle_errors():
    with pytest.raises(ValueError, match="sum"):
        rle_decode({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(ValueError, match="size"):
        rle_decode({"counts": [4]})
    with pytest.raises(ValueError, match="differs"):
        segmentation_to_mask({"size": [2, 2], "counts": [4]}, 3, 3)
    with pytest.raises(ValueError):
        segmentation_to_mask("nonsense", 3, 3)
    # pycocotools itself would return uninitialised memory for runs that fall short
    with pytest.raises(ValueError, match="sum to 1, expected 2 x 2"):
        rle_decode({"size": [2, 2], "counts": "1"})
    with pytest.raises(ValueError, match="character code"):
        rle_decode({"size": [2, 2], "counts": "zz"})
    with pytest.raises(ValueError, match="truncated"):
        rle_decode({"size": [2, 2], "counts": "1a"})
    with pytest.raises(ValueError, match="negative"):
        rle_decode({"size": [2, 2], "counts": [-1, 5]})
    with pytest.raises(ValueError, match="outside 1"):
        rle_decode({"size": [1 << 14, 1 << 14], "counts": [1 << 28]})


def test_polygon_bounds_checked_before_rasterising():
    with pytest.raises(ValueError, match="is the annotation for this image"):
        polygons_to_mask([[0, 0, 1e9, 0, 5, 5]], 10, 10)
    with pytest.raises(ValueError, match="finite"):
        polygons_to_mask([[0, 0, float("nan"), 0, 5, 5]], 10, 10)
    with pytest.raises(ValueError, match="outside 1"):
        polygons_to_mask([[0, 0, 4, 0, 4, 4]], 0, 10)
    assert not polygons_to_mask([], 3, 4).any()


def test_xywh_to_box():
    assert xywh_to_box([2, 2, 10, 10], 30, 40) == (2, 2, 11, 11)
    assert xywh_to_box([1.5, 0.2, 3.0, 2.9], 30, 40) == (1, 0, 4, 3)
    assert xywh_to_box([35, 25, 20, 20], 30, 40) == (35, 25, 39, 29)
