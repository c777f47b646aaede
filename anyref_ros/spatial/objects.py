"""An object's own 3D points, its position and its oriented box, from its
mask and a depth image (no ROS import).

:func:`object_points` keeps the depth pixels under the mask that belong to
the object and back-projects them with the depth camera's pinhole
intrinsics, in that camera's optical frame (x right, y down, z forward,
metres). A mask's pixels are rejected when

* their depth is a hole (0, NaN, infinite);
* they are *flying pixels*: their depth jumps by more than
  ``flying_jump`` x depth (at least :data:`MIN_JUMP_M`) to one of their four
  neighbours — the smeared depths a sensor reports at an object's outline;
* they lie on another surface than the object: the masked depths, sorted,
  split wherever two consecutive ones are more than ``gap`` x depth (at
  least :data:`MIN_GAP_M`) apart; the largest such run is the object, the
  rest (background seen past the object's outline, a surface in front) is
  dropped. This is what keeps a mask that spills over a depth edge from
  pulling the object's points, position and box onto the wall behind it.

The object's position is the per-axis median of the kept points (before any
downsampling). At most ``max_points`` points are returned: a mask of more
pixels is read on a regular pixel grid (every s-th pixel in both directions,
s = ceil(sqrt(pixels / max_points)), so the cost is bounded before the work
starts), and a cloud that still has more points is voxel-downsampled (one
point per occupied voxel, the voxel's side grown until the count fits).

:func:`oriented_box` fits a box to points: the principal axes of the
points, then, with each principal axis held, the smallest rectangle around
the points projected on the plane of the other two (OpenCV's rotating
calipers); the smallest of these boxes wins. For an object of which three
faces are seen, this is its true box; for one face, the face's rectangle
(size ~0 along its normal). The box's axes are ordered for consumers: its z
is the axis closest to the frame's z (pointing to +z), x the longer of the
other two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
from pytransform3d.rotations import quaternion_from_matrix

from anyref_ros.geometry import Intrinsics, resize_mask

MIN_JUMP_M = 0.005
MIN_GAP_M = 0.01
#: Points used to find the box's axes (its extents use every point).
BOX_FIT_POINTS = 1024
#: Points (evenly picked) whose per-axis median is the object's position.
MEDIAN_POINTS = 8192


class NoObjectDepth(ValueError):
    """No valid depth under the mask; the message says why."""


@dataclass(frozen=True)
class PointFilter:
    """How depth pixels under a mask are kept (see the module docstring)."""

    flying_jump: float = 0.03
    gap: float = 0.02
    max_points: int = 20000


@dataclass
class ObjectPoints:
    """The object's points in the depth camera's optical frame."""

    xyz: np.ndarray  # (N, 3) float32, metres
    rgb: Optional[np.ndarray]  # (N, 3) uint8, or None without a colour image
    position: np.ndarray  # (3,) float64: per-axis median of the kept points
    counts: dict = field(default_factory=dict)  # masked, holes, flying, background, kept, published


@dataclass
class OrientedBox:
    """A box: ``rotation``'s columns are its x, y, z axes; ``size`` along them."""

    center: np.ndarray  # (3,)
    rotation: np.ndarray  # (3, 3), det +1
    size: np.ndarray  # (3,)

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        w, x, y, z = quaternion_from_matrix(self.rotation)
        return np.array([x, y, z, w])

    def corners(self) -> np.ndarray:
        """(8, 3) corners."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        return self.center + (signs * (self.size / 2.0)) @ self.rotation.T

    def transformed(self, matrix: np.ndarray) -> "OrientedBox":
        """The same box in another frame (``matrix``: 4x4, this frame -> that one); axes not reordered."""
        return OrientedBox(matrix[:3, :3] @ self.center + matrix[:3, 3], matrix[:3, :3] @ self.rotation, self.size)


def object_points(mask: np.ndarray, depth: np.ndarray, intrinsics: Intrinsics, rgb: Optional[np.ndarray] = None,
                  how: PointFilter = PointFilter(), scale: float = 1.0) -> ObjectPoints:
    """The object's points (module docstring). ``mask``: HxW bool at the
    colour image's size (resized to the depth image, which must be registered
    to the colour image); ``depth``: ``scale`` metres per unit (uint16
    millimetres: 0.001), 0/NaN where invalid, the size ``intrinsics`` were
    given for (only the pixels under the mask are converted); ``rgb``: the
    colour image, for the points' colours. Raises :class:`NoObjectDepth` (or
    ValueError for sizes that do not match)."""
    h, w = depth.shape
    if (intrinsics.width, intrinsics.height) != (w, h):
        raise ValueError(f"the depth image is {w}x{h} but its camera_info is for "
                         f"{intrinsics.width}x{intrinsics.height}")
    m = np.ascontiguousarray(resize_mask(np.asarray(mask, dtype=bool), h, w))
    bx, by, bw, bh = cv2.boundingRect(m.view(np.uint8))
    if bw == 0 or bh == 0:
        raise NoObjectDepth("the mask is empty")
    r0, r1, c0, c1 = max(by - 1, 0), min(by + bh + 1, h), max(bx - 1, 0), min(bx + bw + 1, w)
    masked = int(np.count_nonzero(m[r0:r1, c0:c1]))
    # Every s-th pixel in both directions, so that about max_points are read: the cost is
    # bounded before the work, whatever the mask's size.
    step = max(1, int(np.ceil(np.sqrt(masked / max(1, how.max_points)))))
    d = np.multiply(depth[r0:r1:step, c0:c1:step], np.float32(scale), dtype=np.float32)
    inside = np.ascontiguousarray(m[r0:r1:step, c0:c1:step])
    valid = np.isfinite(d) & (d > 0)
    counts = {"masked": masked, "step": step}
    keep = inside & valid
    counts["holes"] = int(np.count_nonzero(inside)) - int(np.count_nonzero(keep))
    if not keep.any():
        raise NoObjectDepth(f"no valid depth under the mask ({masked} pixels, all 0 or NaN)")
    jump = _jumps(d, valid)
    flying = (jump > np.maximum(how.flying_jump * d, MIN_JUMP_M)) & keep
    counts["flying"] = int(np.count_nonzero(flying))
    keep &= ~flying
    if not keep.any():
        raise NoObjectDepth(f"every depth pixel under the mask lies on a depth edge ({counts['flying']} flying pixels)")
    spill = _past_outline(d, keep, inside, jump, how.gap)
    counts["background"] = int(np.count_nonzero(spill))
    vs, us = np.nonzero(keep & ~spill)
    z = d[vs, us]
    lo, hi = _main_surface(z, how.gap)
    on = (z >= lo) & (z <= hi)
    counts["background"] += int(z.size - np.count_nonzero(on))
    vs, us, z = vs[on] * step + r0, us[on] * step + c0, z[on]
    xyz = np.empty((z.size, 3), dtype=np.float32)
    xyz[:, 0] = (us - intrinsics.cx) * z / intrinsics.fx
    xyz[:, 1] = (vs - intrinsics.cy) * z / intrinsics.fy
    xyz[:, 2] = z
    colours = None
    if rgb is not None:
        ch, cw = rgb.shape[:2]
        colours = rgb[(vs * ch) // h, (us * cw) // w] if (ch, cw) != (h, w) else rgb[vs, us]
    position = np.median(xyz[:: max(1, z.size // MEDIAN_POINTS)], axis=0).astype(np.float64)
    counts["kept"] = int(z.size)
    if z.size > how.max_points:
        pick = voxel_downsample(xyz, how.max_points)
        xyz = xyz[pick]
        colours = colours[pick] if colours is not None else None
    counts["published"] = int(xyz.shape[0])
    return ObjectPoints(xyz=xyz, rgb=colours, position=position, counts=counts)


def _jumps(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each pixel's largest depth step to a valid 4-neighbour (0 without one)."""
    jump = np.zeros_like(d)
    dv = np.where(valid, d, np.float32(np.nan))
    for a, b in ((np.s_[1:, :], np.s_[:-1, :]), (np.s_[:, 1:], np.s_[:, :-1])):
        diff = np.abs(dv[a] - dv[b])
        np.fmax(jump[a], diff, out=jump[a])  # fmax skips NaN: a hole is no neighbour
        np.fmax(jump[b], diff, out=jump[b])
    return jump


def _past_outline(d: np.ndarray, keep: np.ndarray, inside: np.ndarray, jump: np.ndarray,
                  rel_gap: float) -> np.ndarray:
    """Pixels of the mask's outer band (as wide as a tenth of the mask's size) whose depth
    lies outside the depths of the mask's core near them, grown by ``rel_gap`` x depth
    plus what the object's own surface slope covers across the band: the mask's spill
    onto a surface behind (or in front of) the object."""
    r = int(max(2, round(0.1 * np.sqrt(np.count_nonzero(inside)))))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))
    core = cv2.erode(inside.view(np.uint8), kernel).view(bool) & keep
    band = keep & ~core
    if not core.any() or not band.any():
        return np.zeros_like(keep)
    big = np.float32(np.finfo(np.float32).max)
    around = cv2.getStructuringElement(cv2.MORPH_RECT, (4 * r + 1, 4 * r + 1))
    near_lo = cv2.erode(np.where(core, d, big), around)
    near_hi = cv2.dilate(np.where(core, d, -big), around)
    slope = float(np.median(jump[core][:: max(1, int(np.count_nonzero(core)) // MEDIAN_POINTS)]))  # depth step per pixel on the object itself
    margin = np.maximum(rel_gap * d, MIN_GAP_M) + 2 * r * slope
    return band & (near_lo < big) & ((d < near_lo - margin) | (d > near_hi + margin))


def _main_surface(z: np.ndarray, rel_gap: float) -> tuple[float, float]:
    """Depth range of the largest run of depths without an empty stretch wider than
    about ``rel_gap`` x depth (bins of half that width in log-depth: O(N), no sort)."""
    step = np.log1p(max(rel_gap, 1e-4)) / 2.0
    bins = np.floor(np.log(np.maximum(z, MIN_GAP_M)) / step).astype(np.int64)
    first = int(bins.min())
    counts = np.bincount(bins - first)
    occupied = counts > 0
    # Runs of bins joined across at most one empty bin (a gap of under rel_gap x depth).
    bridged = occupied.copy()
    bridged[1:-1] |= occupied[:-2] & occupied[2:]
    edges = np.flatnonzero(np.diff(np.concatenate(([0], bridged.view(np.int8), [0]))))
    starts, ends = edges[0::2], edges[1::2]
    totals = np.add.reduceat(counts, starts)
    best = int(np.argmax(totals))
    lo_bin, hi_bin = starts[best] + first, ends[best] - 1 + first
    return float(np.exp(lo_bin * step)), float(np.exp((hi_bin + 1) * step))


def voxel_downsample(xyz: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` points, one per occupied voxel (the first
    point met in each); the voxel's side starts from the cloud's spread and grows
    until the count fits."""
    n = xyz.shape[0]
    if n <= max_points:
        return np.arange(n)
    lo = xyz.min(axis=0)
    spread = xyz.max(axis=0) - lo
    side = max(float(np.max(spread)) / np.sqrt(max_points), 1e-6)  # a surface: about (extent / side)^2 voxels
    order = np.arange(n - 1, -1, -1)
    for _ in range(8):
        dims = np.floor(spread / side).astype(np.int64) + 1
        cells = np.floor((xyz - lo) / side).astype(np.int64)
        key = (cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2]
        if int(np.prod(dims)) <= 8 * n:  # a dense table: one pass, no sort
            first = np.full(int(np.prod(dims)), -1, dtype=np.int64)
            first[key[order]] = order  # the last write wins: each voxel keeps its first point
            first = first[first >= 0]
        else:
            _, first = np.unique(key, return_index=True)
        if first.size <= max_points:
            return np.sort(first)
        side *= max(1.1, float(np.sqrt(first.size / max_points)))
    return np.sort(first)[:: int(np.ceil(first.size / max_points))]


def oriented_box(points: np.ndarray, rounds: int = 1) -> OrientedBox:
    """The box of ``points`` (N x 3, N >= 1); see the module docstring."""
    p = np.asarray(points)
    fit = p[:: max(1, p.shape[0] // BOX_FIT_POINTS)].astype(np.float64)
    mean = fit.mean(axis=0)
    fit = fit - mean
    _, vecs = np.linalg.eigh(np.cov(fit.T) if fit.shape[0] > 1 else np.eye(3))
    vecs = vecs * np.sign(np.linalg.det(vecs))  # right-handed
    # Starts: the principal axes, and the frame's own z held (upright objects on a level support).
    starts = [vecs, _turned(fit, np.eye(3), 2)]
    best = min((_fit(fit, axes) for axes in starts), key=_volume)
    for _ in range(rounds):  # hold each axis in turn; the smallest rectangle around the rest
        for k in range(3):
            best = min(best, _fit(fit, _turned(fit, best.rotation, k)), key=_volume)
    box = _fit(p, best.rotation)  # the extents of every point
    return _canonical(box)


def _turned(points: np.ndarray, axes: np.ndarray, k: int) -> np.ndarray:
    """``axes`` with axis ``k`` held and the other two turned to the smallest
    rectangle around ``points`` projected on their plane."""
    a1, a2 = axes[:, (k + 1) % 3], axes[:, (k + 2) % 3]
    flat = np.stack([points @ a1, points @ a2], axis=1).astype(np.float32)
    corners = cv2.boxPoints(cv2.minAreaRect(flat))
    e = corners[1] - corners[0]
    norm = float(np.hypot(*e))
    if norm < 1e-9:
        return axes
    e1 = e / norm
    out = axes.copy()
    out[:, (k + 1) % 3] = e1[0] * a1 + e1[1] * a2
    out[:, (k + 2) % 3] = -e1[1] * a1 + e1[0] * a2
    return out


def _volume(box: OrientedBox) -> tuple[float, float]:
    """Order of boxes: volume, then surface (for flat point sets)."""
    return round(float(np.prod(box.size)), 12), float(box.size @ np.roll(box.size, 1))


def _fit(p: np.ndarray, axes: np.ndarray) -> OrientedBox:
    proj = axes.T.astype(p.dtype) @ p.T  # (3, N): rows reduce fast
    lo, hi = proj.min(axis=1).astype(np.float64), proj.max(axis=1).astype(np.float64)
    return OrientedBox(center=axes @ ((lo + hi) / 2.0), rotation=axes, size=hi - lo)


def _canonical(box: OrientedBox) -> OrientedBox:
    """z = the axis closest to the frame's z (pointing up), x = the longer other one, right-handed."""
    axes, size = box.rotation, box.size
    k = int(np.argmax(np.abs(axes[2, :])))
    z = axes[:, k] * (1.0 if axes[2, k] >= 0 else -1.0)
    others = [i for i in range(3) if i != k]
    i, j = sorted(others, key=lambda i: -size[i])
    x = axes[:, i]
    y = np.cross(z, x)
    rotation = np.stack([x, y, z], axis=1)
    return OrientedBox(center=box.center, rotation=rotation, size=np.array([size[i], size[j], size[k]]))
