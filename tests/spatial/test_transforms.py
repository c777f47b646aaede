"""TransformBuffer: lookups at a stamp through a chain of static and moving
frames, interpolated between samples, waiting for late transforms, and a
reason for every lookup it cannot answer (no ROS involved)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from anyref_ros.spatial.transforms import MAX_EDGES, TransformBuffer, TransformUnavailable
from pytransform3d.rotations import quaternion_from_axis_angle

CAMERA = (0.1, 0.0, 0.5)  # base_link -> camera_optical translation


def yaw_xyzw(angle: float) -> tuple[float, float, float, float]:
    w, x, y, z = quaternion_from_axis_angle([0.0, 0.0, 1.0, angle])
    return x, y, z, w


def robot(rate_hz: float = 50.0, seconds: float = 4.0, speed: float = 1.0, turn: float = 0.5) -> TransformBuffer:
    """map <- base_link driving at ``speed`` m/s along x while turning at ``turn``
    rad/s; a static camera on the robot."""
    buf = TransformBuffer()
    buf.add("base_link", "camera_optical", 0.0, CAMERA, yaw_xyzw(0.0), static=True)
    for t in np.arange(0.0, seconds + 1e-9, 1.0 / rate_hz):
        buf.add("map", "base_link", float(t), (speed * t, 0.0, 0.0), yaw_xyzw(turn * t))
    return buf


def truth(t: float, speed: float = 1.0, turn: float = 0.5) -> np.ndarray:
    """map <- camera_optical at t, by construction."""
    c, s = np.cos(turn * t), np.sin(turn * t)
    m = np.eye(4)
    m[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    m[:3, 3] = [speed * t, 0.0, 0.0]
    cam = np.eye(4)
    cam[:3, 3] = CAMERA
    return m @ cam


@pytest.mark.parametrize("t", [0.5, 1.23, 2.011, 3.999])
def test_chain_at_a_stamp_between_samples(t):
    got = robot().lookup("map", "camera_optical", t)
    assert np.allclose(got, truth(t), atol=1e-4)


def test_inverse_direction_and_identity():
    buf = robot()
    forward = buf.lookup("map", "camera_optical", 1.5)
    assert np.allclose(buf.lookup("camera_optical", "map", 1.5) @ forward, np.eye(4), atol=1e-9)
    assert np.array_equal(buf.lookup("map", "/map", 1.5), np.eye(4))


def test_the_latest_transform_is_not_used_for_an_older_stamp():
    """The whole point: at 1 m/s a frame 0.5 s old is 0.5 m from the latest pose."""
    buf = robot()
    at_stamp = buf.lookup("map", "camera_optical", 3.5)[:3, 3]
    latest = buf.lookup("map", "camera_optical", None)[:3, 3]
    assert np.allclose(at_stamp, truth(3.5)[:3, 3], atol=1e-4)
    assert np.linalg.norm(latest - at_stamp) > 0.45


def test_waits_for_a_transform_that_arrives_late():
    buf = robot(seconds=1.0)
    threading.Timer(0.15, lambda: buf.add("map", "base_link", 1.2, (1.2, 0.0, 0.0), yaw_xyzw(0.6))).start()
    start = time.monotonic()
    got = buf.lookup("map", "camera_optical", 1.1, timeout=2.0)
    assert 0.1 < time.monotonic() - start < 1.5
    # Screw interpolation across this 0.2 s gap bends the straight path by ~2.5 mm (at 50 Hz: ~0.03 mm).
    assert np.allclose(got, truth(1.1), atol=5e-3)


def test_reasons():
    buf = robot(seconds=1.0)
    start = time.monotonic()
    with pytest.raises(TransformUnavailable, match=r"no transform map <- camera_optical at 5\.000 s: 5\.000 s is newer"):
        buf.lookup("map", "camera_optical", 5.0, timeout=0.2)
    assert time.monotonic() - start >= 0.19  # waited for it
    start = time.monotonic()
    with pytest.raises(TransformUnavailable, match="older than the transforms kept"):
        buf.lookup("map", "camera_optical", -3.0, timeout=5.0)
    assert time.monotonic() - start < 0.5  # waiting cannot help
    with pytest.raises(TransformUnavailable, match="'odom' has not been broadcast"):
        buf.lookup("odom", "camera_optical", 0.5)
    buf.add("odom", "wheel", 0.0, (0, 0, 0), (0, 0, 0, 1), static=True)
    with pytest.raises(TransformUnavailable, match="not connected"):
        buf.lookup("odom", "camera_optical", 0.5)


def test_bad_transforms_are_refused_and_bounded():
    buf = TransformBuffer()
    assert not buf.add("a", "b", 0.0, (np.nan, 0, 0), (0, 0, 0, 1))
    assert not buf.add("a", "b", 0.0, (0, 0, 0), (0, 0, 0, 0))
    assert not buf.add("a", "a", 0.0, (0, 0, 0), (0, 0, 0, 1))
    assert not buf.add("", "b", 0.0, (0, 0, 0), (0, 0, 0, 1))
    assert buf.add("a", "b", 0.0, (0, 0, 0), (0, 0, 0, 2))  # normalised
    assert not buf.add("c", "b", 0.0, (0, 0, 0), (0, 0, 0, 1))  # b already has a parent
    assert buf.rejected == 5
    for i in range(MAX_EDGES + 10):
        buf.add("root", f"f{i}", 0.0, (0, 0, 0), (0, 0, 0, 1), static=True)
    assert len(buf.frames) <= MAX_EDGES + 2  # a, b, root and the children that found room


def test_old_samples_are_forgotten_and_out_of_order_ones_sorted():
    buf = TransformBuffer(cache_s=1.0)
    for t in np.arange(0.0, 5.0, 0.1):
        buf.add("map", "base", float(t), (float(t), 0, 0), (0, 0, 0, 1))
    with pytest.raises(TransformUnavailable, match="older"):
        buf.lookup("map", "base", 2.0)
    buf.add("map", "base", 4.85, (4.85, 0, 0), (0, 0, 0, 1))  # arrives late, between two samples
    assert buf.lookup("map", "base", 4.85)[0, 3] == pytest.approx(4.85)
