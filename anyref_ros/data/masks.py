"""COCO-style masks (polygons and run-length encoding) through ``pycocotools``,
the COCO project's own codec, so masks match what every other tool in the
field reads from the same files.

COCO RLE facts: ``{"size": [h, w], "counts": ...}``; the counts are run
lengths over the mask flattened in column-major (Fortran) order, starting
with a run of zeros. ``counts`` is either a list of ints (uncompressed, used
for crowd annotations) or a string (compressed, COCO's 6-bit character code).
Polygons are flat ``[x1, y1, x2, y2, ...]`` lists in pixel coordinates,
rasterised by pycocotools' own rule (a pixel whose centre lies on or within
about half a pixel of an edge may fall on either side of it).

What pycocotools does not check is checked here before it runs: the mask
size (:data:`MAX_MASK_PIXELS`), polygon shapes and coordinates (an edge far
outside the image would cost memory in proportion to its length), and that
the runs of an RLE add up to h * w (pycocotools returns uninitialised memory
for runs that fall short).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

#: Largest mask decoded (height x width); a COCO image is about 0.3 Mpx.
MAX_MASK_PIXELS = 1 << 26


def _decode(rle: Any) -> np.ndarray:
    """pycocotools' decode as bool, without its numpy-2 DeprecationWarning
    (``__array__`` without ``copy``), which says nothing about the mask."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"__array__ implementation", category=DeprecationWarning)
        return coco_mask.decode(rle).astype(bool)


def _check_size(height: int, width: int) -> tuple[int, int]:
    h, w = int(height), int(width)
    if h <= 0 or w <= 0 or h * w > MAX_MASK_PIXELS:
        raise ValueError(f"mask size {h} x {w} is outside 1 .. {MAX_MASK_PIXELS} pixels")
    return h, w


def _check_polygon(poly: Any, h: int, w: int) -> list[float]:
    try:
        coords = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a polygon must be a flat list of numbers, got {poly!r:.60}") from exc
    if coords.ndim != 1 or coords.size % 2 or coords.size < 6:
        raise ValueError(f"a polygon needs >= 3 (x, y) pairs as a flat list, got {coords.size} numbers")
    hi = 8.0 * max(h, w) + 64.0  # bounds rasterising cost; real annotations stay near the image
    lo = -hi
    if not np.isfinite(coords).all() or coords.min() < lo or coords.max() > hi:
        raise ValueError(f"polygon coordinates must be finite and within {lo:g} .. {hi:g} for a {h} x {w} "
                         f"mask, got {coords.min():g} .. {coords.max():g}: is the annotation for this image?")
    return coords.tolist()


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons into a ``height`` x ``width`` bool mask (their
    union) with pycocotools. Raises ValueError for a polygon with fewer than
    3 points, an odd number of coordinates or coordinates far off the image."""
    h, w = _check_size(height, width)
    polys = [_check_polygon(p, h, w) for p in polygons]
    if not polys:
        return np.zeros((h, w), dtype=bool)
    rle = coco_mask.merge(coco_mask.frPyObjects(polys, h, w))
    return _decode(rle)


def _counts_total(counts: str) -> int:
    """Sum of the runs of a compressed counts string (COCO's character code:
    5-bit groups ``chr(48 + g)``, 0x20 = more groups follow, 0x10 of the last
    group = sign, values from the third on stored as a difference to the
    value two places earlier). Only validates; pycocotools decodes."""
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        value, shift, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("truncated RLE counts string")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"RLE counts string holds {counts[p]!r}, outside COCO's character code")
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            p, shift = p + 1, shift + 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError("RLE counts string encodes a negative run")
        runs.append(value)
    return sum(runs)


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Decode a COCO RLE dict (compressed string or bytes, or uncompressed list
    counts) into an h x w bool mask with pycocotools. Raises ValueError when
    the runs do not add up to h * w or the dict lacks ``size``/``counts``."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"RLE must be a dict with 'size': [h, w] and 'counts', got {rle!r:.80}") from exc
    h, w = _check_size(h, w)
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        total = _counts_total(counts)
        coded = {"size": [h, w], "counts": counts.encode("ascii")}
    else:
        try:
            runs = [int(c) for c in counts]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"RLE counts must be a string or a list of ints, got {counts!r:.60}") from exc
        if any(r < 0 for r in runs):
            raise ValueError("RLE counts hold a negative run")
        total = sum(runs)
        coded = coco_mask.frPyObjects({"size": [h, w], "counts": runs}, h, w) if total == h * w else None
    if total != h * w:
        raise ValueError(f"RLE runs sum to {total}, expected {h} x {w} = {h * w}")
    return _decode(coded)


def rle_encode(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """Encode an h x w bool mask as a COCO RLE dict: string counts (by
    pycocotools) when ``compressed``, else a list of ints (crowd style)."""
    mask = np.asarray(mask, dtype=bool)
    if compressed:
        rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}
    flat = mask.T.ravel()
    edges = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    runs = np.diff(edges).tolist()
    if flat.size and flat[0]:
        runs = [0] + runs
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": runs}


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Mask of a COCO ``segmentation`` field: a list of polygons, or an RLE
    dict (compressed or not); the result is ``height`` x ``width`` bool."""
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, height, width)
    if isinstance(segmentation, dict):
        mask = rle_decode(segmentation)
        if mask.shape != (int(height), int(width)):
            raise ValueError(f"RLE size {mask.shape} differs from the image size {(height, width)}")
        return mask
    raise ValueError(f"segmentation must be a polygon list or an RLE dict, got {type(segmentation).__name__}")


def xywh_to_box(bbox: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """COCO ``[x, y, w, h]`` (float pixels) -> inclusive (x_min, y_min, x_max, y_max)
    covering every pixel the box touches, clipped to the image."""
    x, y, w, h = (float(v) for v in bbox)
    x0, y0 = max(0, int(math.floor(x))), max(0, int(math.floor(y)))
    x1 = min(width - 1, max(x0, int(math.ceil(x + w)) - 1))
    y1 = min(height - 1, max(y0, int(math.ceil(y + h)) - 1))
    return x0, y0, x1, y1
