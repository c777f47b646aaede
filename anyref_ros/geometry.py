"""Pinhole intrinsics, mask resizing and stamp matching (no ROS import); an
object's 3D points, position and box from them: :mod:`anyref_ros.spatial`."""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Generic, Optional, TypeVar

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics (pixels) of an image of ``width`` x ``height``."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_k(cls, k, width: int, height: int) -> "Intrinsics":
        """From a row-major 3x3 camera matrix (sensor_msgs/CameraInfo.k)."""
        k = [float(v) for v in k]
        if len(k) != 9 or k[0] <= 0 or k[4] <= 0:
            raise ValueError(f"camera matrix K must have 9 values with fx, fy > 0, got {k}")
        return cls(fx=k[0], fy=k[4], cx=k[2], cy=k[5], width=int(width), height=int(height))


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask (for a depth image of another size)."""
    if mask.shape == (height, width):
        return mask
    rows = (np.arange(height) * mask.shape[0] / height).astype(int)
    cols = (np.arange(width) * mask.shape[1] / width).astype(int)
    return mask[rows[:, None], cols[None, :]]


T = TypeVar("T")


class StampBuffer(Generic[T]):
    """The last ``size`` items keyed by stamp (seconds), for approximate sync."""

    def __init__(self, size: int = 10) -> None:
        self._items: deque[tuple[float, T]] = deque(maxlen=size)

    def add(self, stamp: float, item: T) -> None:
        self._items.append((stamp, item))

    def nearest(self, stamp: float, slop: float) -> Optional[T]:
        """The item whose stamp is closest to ``stamp``, if within ``slop`` seconds."""
        if not self._items:
            return None
        items = sorted(self._items, key=lambda p: p[0])
        stamps = [s for s, _ in items]
        i = bisect.bisect_left(stamps, stamp)
        best = min((j for j in (i - 1, i) if 0 <= j < len(items)), key=lambda j: abs(stamps[j] - stamp))
        return items[best][1] if abs(stamps[best] - stamp) <= slop else None

    def __len__(self) -> int:
        return len(self._items)
