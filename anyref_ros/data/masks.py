"""Mask codecs for COCO-style annotations: polygons and run-length encoding.

COCO RLE facts: ``{"size": [h, w], "counts": ...}``; the counts are run
lengths over the mask flattened in column-major (Fortran) order, starting
with a run of zeros. ``counts`` is either a list of ints (uncompressed, used
for crowd annotations) or a string (compressed): each value is written in
5-bit groups as characters ``chr(48 + group)``, low groups first, bit 0x20
meaning "more groups follow" and bit 0x10 of the last group being the sign;
from the third value on, the value stored is the difference to the value two
places earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _fill_polygon(mask: np.ndarray, xy: np.ndarray) -> None:
    """Set the pixels of ``mask`` whose centres lie inside polygon ``xy``
    (n x 2, even-odd rule; a centre on a left/top edge is inside, on a
    right/bottom edge outside)."""
    h, w = mask.shape
    x0, y0 = xy[:, 0], xy[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    first = max(0, int(np.ceil(y0.min() - 0.5)))
    last = min(h - 1, int(np.floor(y0.max() - 0.5)))
    for row in range(first, last + 1):
        yc = row + 0.5
        crossing = (y0 <= yc) != (y1 <= yc)
        if not crossing.any():
            continue
        xa, ya, xb, yb = x0[crossing], y0[crossing], x1[crossing], y1[crossing]
        xs = np.sort(xa + (yc - ya) * (xb - xa) / (yb - ya))
        for left, right in zip(xs[0::2], xs[1::2]):
            start = min(w, max(0, int(np.ceil(left - 0.5))))
            stop = min(w, max(0, int(np.ceil(right - 0.5))))
            mask[row, start:stop] ^= True


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (each a flat ``[x1, y1, x2, y2, ...]`` list in
    pixel coordinates, pixel (x, y) covering [x, x+1) x [y, y+1)) into a
    ``height`` x ``width`` bool mask: the union of the polygons, a pixel being
    inside when its centre is. Raises ValueError for a polygon with fewer than
    3 points or an odd number of coordinates."""
    mask = np.zeros((height, width), dtype=bool)
    for poly in polygons:
        coords = np.asarray(poly, dtype=np.float64)
        if coords.ndim != 1 or coords.size % 2 or coords.size < 6:
            raise ValueError(f"a polygon needs >= 3 (x, y) pairs as a flat list, got {coords.size} numbers")
        one = np.zeros_like(mask)
        _fill_polygon(one, coords.reshape(-1, 2))
        mask |= one
    return mask


def _decode_counts_string(s: str) -> list[int]:
    counts: list[int] = []
    p = 0
    while p < len(s):
        value, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("truncated RLE counts string")
            c = ord(s[p]) - 48
            value |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                value |= -1 << (5 * k)
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def _encode_counts_string(counts: Sequence[int]) -> str:
    out = []
    for i, value in enumerate(counts):
        x = int(value) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if c & 0x10 else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE dict (compressed string or uncompressed list counts;
    bytes are accepted) into an h x w bool mask. Raises ValueError when the
    runs do not add up to h * w or the dict lacks ``size``/``counts``."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"RLE must be a dict with 'size': [h, w] and 'counts', got {rle!r:.80}") from exc
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    runs = _decode_counts_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if any(r < 0 for r in runs) or sum(runs) != h * w:
        raise ValueError(f"RLE runs sum to {sum(runs)}, expected {h} x {w} = {h * w}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape((w, h)).T.copy()


def rle_encode(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """Encode an h x w bool mask as a COCO RLE dict (string counts when
    ``compressed``, else a list of ints)."""
    mask = np.asarray(mask, dtype=bool)
    flat = mask.T.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    counts: Any = _encode_counts_string(runs) if compressed else runs
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Mask of a COCO ``segmentation`` field: a list of polygons, or an RLE
    dict (compressed or not); the result is ``height`` x ``width`` bool."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict):
        mask = rle_decode(segmentation)
        if mask.shape != (height, width):
            raise ValueError(f"RLE size {mask.shape} differs from the image size {(height, width)}")
        return mask
    raise ValueError(f"segmentation must be a polygon list or an RLE dict, got {type(segmentation).__name__}")


def xywh_to_box(bbox: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """COCO ``[x, y, w, h]`` (float pixels) -> inclusive (x_min, y_min, x_max, y_max)
    covering every pixel the box touches, clipped to the image."""
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
    x1 = min(width - 1, max(x0, int(np.ceil(x + w)) - 1))
    y1 = min(height - 1, max(y0, int(np.ceil(y + h)) - 1))
    return x0, y0, x1, y1
