"""A 3D toy world: boxes and cylinders on a table, seen by a depth camera.

Ray-cast colour, depth and per-object masks of flat-coloured objects (the
toy world's colours) standing on a table plane, from a camera at a known pose,
so that every 3D output of the node can be checked against the truth: the
objects' boxes, their surface points, and the camera's pose in the robot's
frame (``base_link``, x forward, y left, z up; the table is z = 0).

The camera's optical frame follows REP 103 (x right, y down, z forward);
depth is the z of the hit point in that frame, in metres, as a registered
depth camera reports it. Used by the tests, the demo and the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from anyref_ros.data.toy_render import BACKGROUND_RANGE, COLOURS, NOISE_SIGMA


@dataclass(frozen=True)
class Solid:
    """A box (``kind`` "box": ``size`` = x, y, z extents) or an upright cylinder
    (``kind`` "cylinder": ``size`` = (diameter, diameter, height)) standing on the
    table at (``x``, ``y``), turned by ``yaw`` radians about z."""

    kind: str
    colour: str
    x: float
    y: float
    size: tuple[float, float, float]
    yaw: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.colour} {'square' if self.kind == 'box' else 'circle'}"

    @property
    def center(self) -> np.ndarray:
        return np.array([self.x, self.y, self.size[2] / 2.0])

    @property
    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def contains(self, points: np.ndarray, grow: float = 0.0) -> np.ndarray:
        """Which of ``points`` (N x 3, base_link) lie inside the solid grown by ``grow`` metres."""
        local = (points - self.center) @ self.rotation
        half = np.asarray(self.size) / 2.0 + grow
        if self.kind == "box":
            return np.all(np.abs(local) <= half, axis=1)
        return (np.hypot(local[:, 0], local[:, 1]) <= half[0]) & (np.abs(local[:, 2]) <= half[2])


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at ``position`` (base_link) looking at ``target``."""

    width: int = 640
    height: int = 480
    focal: float = 525.0
    position: tuple[float, float, float] = (0.0, 0.0, 0.55)
    target: tuple[float, float, float] = (0.55, 0.0, 0.0)

    @property
    def k(self) -> list[float]:
        return [self.focal, 0.0, (self.width - 1) / 2.0, 0.0, self.focal, (self.height - 1) / 2.0, 0.0, 0.0, 1.0]

    def pose(self) -> np.ndarray:
        """4x4 base_link <- optical frame."""
        eye, at = np.asarray(self.position, float), np.asarray(self.target, float)
        z = at - eye
        z /= np.linalg.norm(z)
        x = np.cross(z, [0.0, 0.0, 1.0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        m = np.eye(4)
        m[:3, :3] = np.stack([x, y, z], axis=1)
        m[:3, 3] = eye
        return m


@dataclass
class View:
    """What the camera sees: ``rgb`` (H, W, 3) uint8, ``depth`` (H, W) float32
    metres (0 where nothing is hit), ``masks`` per solid, ``pose`` base_link <- optical."""

    rgb: np.ndarray
    depth: np.ndarray
    masks: list[np.ndarray]
    pose: np.ndarray
    camera: Camera
    solids: list[Solid] = field(default_factory=list)


def render(solids: list[Solid], camera: Camera = Camera(), seed: int = 0, table: bool = True,
           pose: Optional[np.ndarray] = None) -> View:
    """Ray-cast ``solids`` on the table (see the module docstring); ``pose``
    (base_link <- optical) overrides the camera's own look-at pose."""
    rng = np.random.default_rng(seed)
    pose = camera.pose() if pose is None else pose
    w, h = camera.width, camera.height
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    k = camera.k
    rays_cam = np.stack([(u - k[2]) / k[0], (v - k[5]) / k[4], np.ones_like(u)], axis=-1).reshape(-1, 3)
    origin = pose[:3, 3]
    rays = rays_cam @ pose[:3, :3].T  # base_link directions with optical z = 1
    hit_t = np.full(rays.shape[0], np.inf)
    owner = np.full(rays.shape[0], -1)
    if table:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -origin[2] / rays[:, 2]
        ok = (t > 0) & np.isfinite(t)
        hit_t[ok] = t[ok]
    for i, solid in enumerate(solids):
        t = _intersect(solid, origin, rays)
        closer = t < hit_t
        hit_t[closer], owner[closer] = t[closer], i
    depth = np.where(np.isfinite(hit_t), hit_t, 0.0).reshape(h, w).astype(np.float32)  # optical z, since ray z = 1
    background = rng.integers(BACKGROUND_RANGE[0], BACKGROUND_RANGE[1] + 1, size=3)
    rgb = np.empty((h * w, 3), dtype=np.float64)
    rgb[:] = background
    masks = []
    for i, solid in enumerate(solids):
        sel = owner == i
        rgb[sel] = COLOURS[solid.colour]
        masks.append(sel.reshape(h, w))
    rgb += rng.normal(0.0, NOISE_SIGMA, rgb.shape)
    rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint8).reshape(h, w, 3)
    return View(rgb=rgb, depth=depth, masks=masks, pose=pose, camera=camera, solids=list(solids))


def _intersect(solid: Solid, origin: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """Ray parameter of the first hit of each ray with ``solid`` (inf: none)."""
    r = solid.rotation
    o = (origin - solid.center) @ r  # solid's local frame
    d = rays @ r
    half = np.asarray(solid.size) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        if solid.kind == "box":
            t1, t2 = (-half - o) / d, (half - o) / d
            near = np.nanmax(np.minimum(t1, t2), axis=1)
            far = np.nanmin(np.maximum(t1, t2), axis=1)
            return np.where((near <= far) & (far > 0), np.maximum(near, 0.0), np.inf)
        radius = half[0]
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = 2.0 * (o[0] * d[:, 0] + o[1] * d[:, 1])
        c = o[0] ** 2 + o[1] ** 2 - radius ** 2
        disc = b * b - 4.0 * a * c
        root = np.sqrt(np.where(disc >= 0, disc, np.nan))
        t_side = (-b - root) / (2.0 * a)
        z_side = o[2] + t_side * d[:, 2]
        side = np.where((disc >= 0) & (t_side > 0) & (np.abs(z_side) <= half[2]), t_side, np.inf)
        t_cap = (half[2] * np.sign(o[2]) - o[2]) / d[:, 2]  # the cap facing the camera
        p = o[:2] + t_cap[:, None] * d[:, :2]
        cap = np.where((t_cap > 0) & (np.hypot(p[:, 0], p[:, 1]) <= radius), t_cap, np.inf)
        return np.nan_to_num(np.minimum(side, cap), nan=np.inf)
