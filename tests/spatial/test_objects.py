"""An object's own points, position and oriented box from a mask and depth,
against the truth of ray-cast 3D toy scenes (anyref_ros.data.toy_3d): exact
masks, masks that spill over a depth edge, misregistered depth, holes,
flying pixels, depth in millimetres, depth of another size, and bounded
point counts (no ROS involved)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from anyref_ros.data.toy_3d import Camera, Solid, render
from anyref_ros.geometry import Intrinsics
from anyref_ros.spatial.objects import NoObjectDepth, PointFilter, object_points, oriented_box, voxel_downsample

CAMERA = Camera(position=(0.2, 0.0, 0.6), target=(0.6, 0.0, 0.0))
BOX = Solid("box", "red", 0.6, 0.05, (0.12, 0.08, 0.10), yaw=0.5)
CYLINDER = Solid("cylinder", "blue", 0.55, -0.15, (0.07, 0.07, 0.12))


@pytest.fixture(scope="module")
def view():
    return render([BOX, CYLINDER], CAMERA, seed=3)


def intrinsics(camera: Camera = CAMERA) -> Intrinsics:
    return Intrinsics.from_k(camera.k, camera.width, camera.height)


def in_base(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    return points.astype(np.float64) @ pose[:3, :3].T + pose[:3, 3]


def box_in_base(view, mask, **kw):
    cloud = object_points(mask, view.depth, intrinsics(), view.rgb, **kw)
    points = in_base(cloud.xyz, view.pose)
    return cloud, points, oriented_box(points)


def assert_box(box, solid: Solid, centre_m: float = 0.01, size_rel: float = 0.10):
    assert np.linalg.norm(box.center - solid.center) < centre_m, (box.center, solid.center)
    got = box.size  # canonical order: x the longer horizontal side, z up
    want = np.array(sorted(solid.size[:2], reverse=True) + [solid.size[2]])
    assert np.all(np.abs(got - want) <= size_rel * want), (got, want)
    assert np.allclose(box.rotation[:, 2], [0, 0, 1], atol=0.05)  # upright
    assert np.isclose(np.linalg.det(box.rotation), 1.0)


@pytest.mark.parametrize("index", [0, 1])
def test_exact_mask_gives_the_objects_box(view, index):
    solid = view.solids[index]
    cloud, points, box = box_in_base(view, view.masks[index])
    assert_box(box, solid)
    assert solid.contains(points, grow=0.002).mean() > 0.99
    assert cloud.rgb.shape == (points.shape[0], 3)
    assert abs(int(cloud.rgb[:, 0].mean()) - (220 if solid.colour == "red" else 40)) < 15  # the object's colour
    if solid.kind == "box":  # the box's own yaw (modulo its symmetry)
        yaw = np.arctan2(box.rotation[1, 0], box.rotation[0, 0])
        assert min(abs((yaw - solid.yaw + np.pi / 2) % np.pi - np.pi / 2), 1.0) < 0.03


@pytest.mark.parametrize("grow_px", [2, 4])
def test_a_mask_spilling_past_the_outline_keeps_the_objects_points(view, grow_px):
    kernel = np.ones((2 * grow_px + 1, 2 * grow_px + 1), np.uint8)
    mask = cv2.dilate(view.masks[0].view(np.uint8), kernel).astype(bool)
    cloud, points, box = box_in_base(view, mask)
    assert cloud.counts["background"] > 0
    assert BOX.contains(points, grow=0.01).mean() >= 0.95
    assert np.linalg.norm(box.center - BOX.center) < 0.015


def test_misregistered_depth_on_a_depth_edge(view):
    """Depth shifted 5 px against the colour image: the mask's edge lies on the
    table far behind the object on one side; those points are dropped."""
    shifted = np.zeros_like(view.depth)
    shifted[:, 5:] = view.depth[:, :-5]
    cloud = object_points(view.masks[1], shifted, intrinsics(), view.rgb)
    points = in_base(cloud.xyz, view.pose)
    assert cloud.counts["background"] + cloud.counts["flying"] > 0
    assert CYLINDER.contains(points, grow=0.01).mean() >= 0.95


def test_holes_and_flying_pixels_are_rejected(view):
    depth = view.depth.copy()
    mask = view.masks[0]
    ys, xs = np.nonzero(mask)
    depth[ys[::3], xs[::3]] = 0.0  # holes
    depth[ys[1::50], xs[1::50]] = np.nan
    ring = cv2.dilate(mask.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~mask
    mixed = cv2.dilate(mask.view(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    depth[ring] = (depth[ring] + np.median(view.depth[mask])) / 2.0  # smeared depths between object and table
    cloud = object_points(mixed, depth, intrinsics())
    assert cloud.counts["holes"] >= len(ys[::3])
    assert cloud.counts["flying"] > 0
    assert BOX.contains(in_base(cloud.xyz, view.pose), grow=0.01).mean() >= 0.95


def test_millimetres_and_a_smaller_registered_depth_image(view):
    mm = np.round(view.depth * 1000.0).astype(np.uint16)
    half = mm[::2, ::2]
    camera = Camera(width=CAMERA.width // 2, height=CAMERA.height // 2, focal=CAMERA.focal / 2)
    k = camera.k  # the half-size image's own intrinsics: centre at ((W/2 - 1) / 2) for pixel centres
    small = Intrinsics(fx=k[0], fy=k[4], cx=(CAMERA.width - 1) / 2 / 2, cy=(CAMERA.height - 1) / 2 / 2,
                       width=camera.width, height=camera.height)
    cloud = object_points(view.masks[0], half, small, view.rgb, scale=0.001)
    box = oriented_box(in_base(cloud.xyz, view.pose))
    assert_box(box, BOX, centre_m=0.012, size_rel=0.12)
    with pytest.raises(ValueError, match="the depth image is 320x240 but its camera_info is for 640x480"):
        object_points(view.masks[0], half, intrinsics())


def test_no_depth_under_the_mask(view):
    with pytest.raises(NoObjectDepth, match="no valid depth under the mask"):
        object_points(view.masks[0], np.zeros_like(view.depth), intrinsics())
    with pytest.raises(NoObjectDepth, match="empty"):
        object_points(np.zeros_like(view.masks[0]), view.depth, intrinsics())


def test_point_count_is_bounded(view):
    mask = np.ones_like(view.masks[0])  # everything: the table too
    cloud = object_points(mask, view.depth, intrinsics(), how=PointFilter(max_points=1000))
    assert cloud.counts["step"] > 1 and 0 < cloud.xyz.shape[0] <= 1000
    pts = np.random.default_rng(0).uniform(0, 1, (50000, 3)).astype(np.float32)
    keep = voxel_downsample(pts, 3000)
    assert 0 < keep.size <= 3000 and np.unique(keep).size == keep.size


def test_flat_and_single_points():
    square = np.array([[x, y, 0.0] for x in np.linspace(0, 0.1, 20) for y in np.linspace(0, 0.05, 10)])
    box = oriented_box(square)
    assert np.allclose(sorted(box.size), [0.0, 0.05, 0.1], atol=1e-6)
    one = oriented_box(np.array([[1.0, 2.0, 3.0]]))
    assert np.allclose(one.center, [1, 2, 3]) and np.allclose(one.size, 0)
