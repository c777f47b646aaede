"""Which object in the camera image made a sound heard from a direction (no ROS import).

The microphone array gives a direction (:class:`anyref_ros.audio.direction.Direction`,
in the audio frame). :meth:`Heard.in_camera` moves it into the camera's optical
frame (x right, y down, z forward) with the audio -> camera transform;
:func:`choose_source` then joins it with the model's answer to "what made
that sound?":

1. **Out of view.** When no direction the array hears alike with the
   estimate (the estimate itself; for a planar array also its mirror image
   through the array's plane; for a linear array any direction on its cone)
   projects into the image, the answer is *not found*, with the direction
   and a description of where: "heard 70 deg to the right, out of view".
   A mask the model drew for a sound that came from elsewhere is dropped.
2. **In view, constrain.** The model's mask is split into its connected
   objects (8-connected; specks under :data:`MIN_PART` of the mask dropped).
   Each object's direction *from the array* is its pixels' centroid ray, or,
   with a depth image, the centroid's 3D point minus the array's position in
   the camera frame (the array and the camera are not at one point: at 1 m a
   10 cm offset is 6 deg). The object nearest the sound (angle up to what the
   array cannot resolve, :meth:`Direction.angle_deg`) is the answer, alone:
   of two alike objects, the one the sound came from.
3. **In view, re-ask.** When no masked object is within ``tolerance_deg`` of
   the sound (the model masked the other one, or nothing), the model is asked
   again on a crop of the image around where the sound projects
   (``ask(box)``, a square of half the image's shorter side), and step 2 runs
   on that mask. Still nothing there: *not found*, "heard 12 deg to the left;
   nothing found in that direction".

Measured on the toy world (``anyref-eval``, groups ``direction_alike`` and
``direction_out_of_view``; figures in the README).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Optional

import cv2
import numpy as np

from anyref_ros.geometry import Intrinsics

#: A part of a mask smaller than this share of the mask is a speck, not an object.
MIN_PART = 0.05
#: Default largest angle between the chosen object and the sound.
TOLERANCE_DEG = 20.0
#: Directions sampled on a linear array's cone to find whether any is in view.
CONE_SAMPLES = 180
#: Nearest a sound source is taken to be (m): where the ray from the array
#: starts when deciding whether the source is in view.
NEAREST_SOURCE_M = 0.3
#: Distances (m) along the ray from the array tried, far to near (inf: the direction itself).
SOURCE_DISTANCES_M = (math.inf,) + tuple(np.geomspace(30.0, NEAREST_SOURCE_M, 24))
#: Bearings closer to straight ahead than this are not called left/right (up/down).
AHEAD_DEG = 2.5

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


@dataclass(frozen=True)
class Heard:
    """A sound's direction in the camera's optical frame.

    ``direction``: the array's estimate with its vector, axis and origin
    moved into the camera frame (so :meth:`Direction.angle_deg` works there).
    """

    direction: object  # anyref_ros.audio.direction.Direction, in the camera frame

    @classmethod
    def in_camera(cls, direction, audio_to_camera: np.ndarray) -> "Heard":
        """``direction`` (audio frame) moved by the 4x4 ``audio_to_camera``
        (points in the audio frame -> camera optical frame)."""
        m = np.asarray(audio_to_camera, dtype=np.float64)
        rot = m[:3, :3]
        moved = replace(direction, vector=rot @ direction.vector,
                        axis=None if direction.axis is None else rot @ direction.axis,
                        origin=rot @ direction.origin + m[:3, 3])
        return cls(moved)

    @property
    def vector(self) -> np.ndarray:
        return self.direction.vector

    def bearing(self) -> tuple[float, float]:
        """(azimuth, elevation) in degrees: azimuth positive to the right of
        the optical axis (in (-180, 180]), elevation positive up."""
        x, y, z = (float(c) for c in self.vector)
        return math.degrees(math.atan2(x, z)), math.degrees(math.asin(max(-1.0, min(1.0, -y))))

    def where(self) -> str:
        """"70 deg to the right", "12 deg to the left and 25 deg up", "straight ahead" (with degree signs)."""
        az, el = self.bearing()
        parts = []
        if abs(az) >= AHEAD_DEG:
            parts.append(f"{abs(az):.0f}\u00b0 to the {'right' if az > 0 else 'left'}")
        if abs(el) >= AHEAD_DEG and self.direction.resolved == "full":  # planar/linear arrays cannot tell up from down
            parts.append(f"{abs(el):.0f}\u00b0 {'up' if el > 0 else 'down'}")
        return " and ".join(parts) or "straight ahead"

    def candidates(self) -> np.ndarray:
        """(k, 3) directions the array hears alike, the estimate first."""
        d = self.direction
        if d.resolved == "hemisphere":
            side = float(d.vector @ d.axis)
            return np.stack([d.vector, d.vector - 2.0 * side * d.axis])
        if d.resolved == "cone":
            a = d.axis
            u = float(np.clip(d.vector @ a, -1.0, 1.0))
            across = d.vector - u * a
            across = across / max(np.linalg.norm(across), 1e-12)
            other = np.cross(a, across)
            turn = np.linspace(0.0, 2 * np.pi, CONE_SAMPLES, endpoint=False)
            ring = np.cos(turn)[:, None] * across + np.sin(turn)[:, None] * other
            return u * a + math.sqrt(1.0 - u * u) * ring  # turn 0 is the estimate
        return d.vector[None, :]

    def pixel(self, intrinsics: Intrinsics) -> Optional[tuple[float, float]]:
        """Where the sound is in the image, or None when it is out of view.

        The source lies on a ray from the array's centre (``origin``, camera
        frame) along one of :meth:`candidates`, at an unknown distance of at
        least :data:`NEAREST_SOURCE_M`; it is in view when some point of those
        rays projects into the image. The pixel: the farthest such point of
        the first candidate that has one (for a cone, the candidate nearest
        the image centre); with the array at the camera, simply the estimate's
        own pixel."""
        dirs = self.candidates()
        for far_to_near in SOURCE_DISTANCES_M:
            points = dirs if math.isinf(far_to_near) else self.direction.origin + far_to_near * dirs
            uv, ok = project(points, intrinsics)
            if ok.any():
                uv = uv[ok]
                pick = 0
                if self.direction.resolved == "cone":
                    pick = int(np.argmin(np.linalg.norm(uv - (intrinsics.cx, intrinsics.cy), axis=1)))
                return float(uv[pick, 0]), float(uv[pick, 1])
        return None


def project(directions: np.ndarray, k: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (k, 2) of unit ``directions`` (k, 3) in the camera frame, and
    which of them are in front of the camera and inside the image."""
    d = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    z = d[:, 2]
    front = z > 1e-6
    safe = np.where(front, z, 1.0)
    u = k.fx * d[:, 0] / safe + k.cx
    v = k.fy * d[:, 1] / safe + k.cy
    inside = front & (u >= 0) & (u < k.width) & (v >= 0) & (v < k.height)
    return np.stack([u, v], axis=1), inside


def pixel_rays(us: np.ndarray, vs: np.ndarray, k: Intrinsics) -> np.ndarray:
    """Unit rays (n, 3) through pixels (camera frame)."""
    rays = np.stack([(np.asarray(us, float) - k.cx) / k.fx, (np.asarray(vs, float) - k.cy) / k.fy,
                     np.ones(np.shape(us))], axis=-1)
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


@dataclass
class Part:
    """One connected object of a mask and its direction from the array."""

    labels: np.ndarray  # the mask's connected objects, numbered from 1, in the mask's box
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of ``labels`` in the image
    shape: tuple[int, int]  # the image's H, W
    label: int
    direction: np.ndarray  # (3,) unit, camera frame, from the array's centre
    angle_deg: float  # to the sound

    @property
    def mask(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.labels == self.label
        return out


def parts(mask: np.ndarray, heard: Heard, k: Intrinsics, depth_m: Optional[np.ndarray] = None) -> list[Part]:
    """The mask's connected objects (specks dropped), nearest the sound first.
    ``depth_m``: H x W metres (0/NaN = no depth), aligned with the image."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)  # labelled in the mask's box only
    x0, y0, x1, y1 = box
    inside = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(inside, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= MIN_PART * areas.sum()) + 1
    rays = pixel_rays(centroids[keep, 0] + x0, centroids[keep, 1] + y0, k)
    if depth_m is not None:  # the median depth of each object: its centroid's 3D point, seen from the array
        d = depth_m[y0:y1, x0:x1]
        valid = inside.astype(bool) & np.isfinite(d) & (d > 0)
        for n, label in enumerate(keep):
            z = d[valid & (labels == label)]
            if z.size:
                offset = rays[n] / rays[n][2] * float(np.median(z)) - heard.direction.origin
                rays[n] = offset / max(np.linalg.norm(offset), 1e-9)
    angles = heard.direction.angle_deg(rays)
    out = [Part(labels, box, mask.shape, int(label), rays[n], float(angles[n])) for n, label in enumerate(keep)]
    return sorted(out, key=lambda p: p.angle_deg)


@dataclass
class SourceChoice:
    """The answer to "what made that sound" once its direction is known."""

    found: bool
    mask: np.ndarray  # H x W bool: the chosen object alone (empty when not found)
    in_view: bool
    pixel: Optional[tuple[float, float]]  # where the sound projects (None: out of view)
    angle_deg: Optional[float]  # between the chosen (or nearest) object and the sound
    reasked: bool  # the model was asked again on a crop around the sound
    note: str  # "" when found; else why ("heard 70 deg to the right, out of view")
    objects: int  # objects in the model's first mask


def crop_box(pixel: tuple[float, float], width: int, height: int) -> Box:
    """A square of half the image's shorter side around ``pixel``, inside the image."""
    side = max(16, min(width, height) // 2)
    x0 = int(round(min(max(pixel[0] - side / 2, 0), width - side)))
    y0 = int(round(min(max(pixel[1] - side / 2, 0), height - side)))
    return max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)


def crop_asker(image: np.ndarray, segment: Callable[[np.ndarray], Optional[np.ndarray]]
               ) -> Callable[[Box], Optional[np.ndarray]]:
    """An ``ask(box)`` for :func:`choose_source`: ``segment(crop)`` (the model's
    mask of the same sound on a crop of ``image``, or None) pasted back at
    the image's size."""
    def ask(box: Box) -> Optional[np.ndarray]:
        x0, y0, x1, y1 = box
        mask = segment(np.ascontiguousarray(image[y0:y1, x0:x1]))
        if mask is None:
            return None
        full = np.zeros(image.shape[:2], dtype=bool)
        full[y0:y1, x0:x1] = mask
        return full

    return ask


def choose_source(mask: np.ndarray, heard: Heard, k: Intrinsics, *, depth_m: Optional[np.ndarray] = None,
                  ask: Optional[Callable[[Box], Optional[np.ndarray]]] = None,
                  tolerance_deg: float = TOLERANCE_DEG) -> SourceChoice:
    """Join the model's ``mask`` (H x W, the image's size, which ``k`` must
    describe) with where the sound came from (see the module docstring).
    ``ask(box)``: the model's mask (H x W, False outside ``box``) for the
    same sound on the crop ``box`` of the image, or None; not called when the
    first mask already holds an object in the sound's direction."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (k.height, k.width):
        raise ValueError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the camera model is for "
                         f"{k.width}x{k.height}")
    nothing = np.zeros_like(mask)
    pixel = heard.pixel(k)
    found = parts(mask, heard, k, depth_m)
    if pixel is None:
        return SourceChoice(False, nothing, False, None, found[0].angle_deg if found else None, False,
                            f"heard {heard.where()}, out of view", len(found))
    best = found[0] if found else None
    reasked = False
    if (best is None or best.angle_deg > tolerance_deg) and ask is not None:
        reasked = True
        again = ask(crop_box(pixel, k.width, k.height))
        retry = parts(again, heard, k, depth_m) if again is not None else []
        if retry and (best is None or retry[0].angle_deg < best.angle_deg):
            best = retry[0]
    if best is None or best.angle_deg > tolerance_deg:
        return SourceChoice(False, nothing, True, pixel, None if best is None else best.angle_deg, reasked,
                            f"heard {heard.where()}; nothing found in that direction"
                            + ("" if best is None else f" (the nearest object is {best.angle_deg:.0f}\u00b0 away)"),
                            len(found))
    return SourceChoice(True, best.mask, True, pixel, best.angle_deg, reasked, "", len(found))
