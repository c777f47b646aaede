"""Joining a sound's direction with the model's mask (spatial/sound_source.py):
the sounding one of two alike objects, out-of-view sounds, what planar and
linear arrays cannot resolve, parallax with depth, and re-asking on a crop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anyref_ros.audio.direction import Direction
from anyref_ros.data.toy_direction import audio_to_camera
from anyref_ros.geometry import Intrinsics
from anyref_ros.spatial.sound_source import Heard, choose_source, crop_box, pixel_rays

K = Intrinsics(fx=200.0, fy=200.0, cx=159.5, cy=119.5, width=320, height=240)


def blob(u: float, v: float, r: int = 12) -> np.ndarray:
    yy, xx = np.mgrid[:K.height, :K.width]
    return (xx - u) ** 2 + (yy - v) ** 2 <= r * r


def towards(u: float, v: float) -> np.ndarray:
    return pixel_rays(np.array([u]), np.array([v]), K)[0]


def heard(vector, resolved="full", axis=None, origin=(0.0, 0.0, 0.0)) -> Heard:
    """A direction already in the camera frame (identity transform)."""
    v = np.asarray(vector, float)
    d = Direction(v / np.linalg.norm(v), 0.9, resolved, (0.0, 1.0),
                  None if axis is None else np.asarray(axis, float), np.asarray(origin, float))
    return Heard.in_camera(d, np.eye(4))


LEFT, RIGHT = (80.0, 150.0), (240.0, 150.0)
BOTH = blob(*LEFT) | blob(*RIGHT)


@pytest.mark.parametrize("side", [LEFT, RIGHT])
def test_the_sounding_one_of_two_alike_objects(side):
    choice = choose_source(BOTH, heard(towards(*side)), K)
    assert choice.found and choice.in_view and not choice.reasked and choice.objects == 2
    assert np.array_equal(choice.mask, blob(*side)) and choice.angle_deg < 1.0


def test_out_of_view_says_where_and_drops_the_mask():
    az = math.radians(70)
    choice = choose_source(BOTH, heard((math.sin(az), 0.0, math.cos(az))), K)
    assert not choice.found and not choice.in_view and not choice.mask.any()
    assert choice.note == "heard 70\u00b0 to the right, out of view"
    behind = choose_source(BOTH, heard((-0.5, 0.0, -0.8)), K)
    assert not behind.found and "to the left, out of view" in behind.note


def test_a_planar_array_hears_below_as_above():
    """A horizontal array (normal = camera up, -y) reports the mirror image
    above its plane; the object below the horizon is still in view and chosen."""
    below = towards(*RIGHT)  # v = 150 > cy: below the optical axis
    mirrored = below * np.array([1.0, -1.0, 1.0])
    choice = choose_source(BOTH, heard(mirrored, "hemisphere", axis=(0.0, -1.0, 0.0)), K)
    assert choice.found and np.array_equal(choice.mask, blob(*RIGHT))


def test_a_microphone_pair_hears_only_the_angle_to_its_axis():
    """A left-right pair (axis camera x) cannot tell up from down nor front
    from back; an object at the right angle is found whatever its height."""
    top_right = blob(240.0, 30.0)
    scene = top_right | blob(*LEFT)
    v = towards(*RIGHT)  # same angle to the x axis as the object above it, nearly
    pair = heard(v, "cone", axis=(1.0, 0.0, 0.0))
    choice = choose_source(scene, pair, K, tolerance_deg=5.0)
    assert choice.found and np.array_equal(choice.mask, top_right)
    assert "up" not in choose_source(scene, heard((0.6, -0.5, 0.6), "cone", axis=(1, 0, 0)), K).note


def test_depth_corrects_the_parallax_between_array_and_camera():
    """The array 0.5 m to the right of the camera: seen from it, a near
    object on the left is where the pixel ray of a far one would point."""
    origin = np.array([0.5, 0.0, 0.0])
    near, far = blob(*LEFT), blob(*RIGHT)
    depth = np.zeros((K.height, K.width))
    depth[near], depth[far] = 1.0, 8.0
    source = towards(*LEFT) * 1.0 / towards(*LEFT)[2]  # the near object's centre, 1 m deep
    sound = heard(source - origin, origin=origin)
    without = choose_source(near | far, sound, K)
    with_depth = choose_source(near | far, sound, K, depth_m=depth)
    assert with_depth.found and np.array_equal(with_depth.mask, near)
    assert not np.array_equal(without.mask, near)  # the pixel rays alone pick the other one (or none)


def test_re_asks_on_a_crop_when_the_model_masked_the_other_one():
    boxes = []

    def ask(box):
        boxes.append(box)
        x0, y0, x1, y1 = box
        out = np.zeros_like(BOTH)
        out[y0:y1, x0:x1] = blob(*RIGHT)[y0:y1, x0:x1]
        return out

    choice = choose_source(blob(*LEFT), heard(towards(*RIGHT)), K, ask=ask)
    assert choice.found and choice.reasked and np.array_equal(choice.mask, blob(*RIGHT))
    x0, y0, x1, y1 = boxes[0]
    assert x0 <= RIGHT[0] < x1 and y0 <= RIGHT[1] < y1 and (x1 - x0, y1 - y0) == (120, 120)
    nothing = choose_source(blob(*LEFT), heard(towards(*RIGHT)), K, ask=lambda box: None)
    assert not nothing.found and nothing.in_view and nothing.reasked
    assert nothing.note.startswith("heard 22\u00b0 to the right and 8\u00b0 down") and "nothing found in that direction" in nothing.note


def test_transform_into_the_camera_and_bad_sizes():
    """A sound straight ahead of a robot-frame array (x forward) is the
    camera's +z; a mask of another size than the camera model is refused."""
    d = Direction(np.array([1.0, 0.0, 0.0]), 0.9, "hemisphere", (0.0, 1.0), np.array([0.0, 0.0, 1.0]),
                  np.zeros(3))
    cam = Heard.in_camera(d, audio_to_camera(0.06))
    assert np.allclose(cam.vector, (0, 0, 1)) and np.allclose(cam.direction.axis, (0, -1, 0))
    assert np.allclose(cam.direction.origin, (0, -0.06, 0)) and cam.where() == "straight ahead"
    with pytest.raises(ValueError, match="the mask is 10x10 but the camera model is for 320x240"):
        choose_source(np.zeros((10, 10), bool), cam, K)
    assert crop_box((0.0, 0.0), 320, 240) == (0, 0, 120, 120)
    assert crop_box((319.0, 239.0), 320, 240) == (200, 120, 320, 240)
