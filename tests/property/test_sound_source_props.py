"""Joining a sound's direction with a mask, on any mask, direction, array kind
and camera (spatial/sound_source.py): it never raises for a well-formed call,
and its answer is always one of the masked objects (or the re-asked mask's),
never a pixel the model did not mask; out of view is never found."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from anyref_ros.audio.direction import Direction
from anyref_ros.geometry import Intrinsics
from anyref_ros.spatial.sound_source import Heard, choose_source

from propsupport import examples

unit = st.tuples(*[st.floats(-1.0, 1.0, allow_nan=False)] * 3).map(np.array).filter(
    lambda v: np.linalg.norm(v) > 1e-3).map(lambda v: v / np.linalg.norm(v))


@st.composite
def scenes(draw):
    w, h = draw(st.integers(8, 96)), draw(st.integers(8, 96))
    f = draw(st.floats(2.0, 400.0))
    k = Intrinsics(f, f * draw(st.floats(0.5, 2.0)), draw(st.floats(-w, 2 * w)), draw(st.floats(-h, 2 * h)), w, h)
    mask = np.zeros((h, w), bool)
    for _ in range(draw(st.integers(0, 4))):  # rectangles, touching or not
        x0, y0 = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
        mask[y0:y0 + draw(st.integers(1, w)), x0:x0 + draw(st.integers(1, h))] = True
    resolved = draw(st.sampled_from(["full", "hemisphere", "cone"]))
    axis = None if resolved == "full" else draw(unit)
    origin = np.array(draw(st.tuples(*[st.floats(-2.0, 2.0)] * 3)))
    heard = Heard.in_camera(Direction(draw(unit), 0.5, resolved, (0.0, 1.0), axis, origin), np.eye(4))
    depth = None
    if draw(st.booleans()):
        depth = np.full((h, w), draw(st.sampled_from([0.0, np.nan, np.inf, 0.5, 3.0])), np.float32)
    return mask, heard, k, depth, draw(st.booleans()), draw(st.floats(1.0, 90.0))


@examples(200)
@given(scenes())
def test_the_answer_is_one_of_the_masked_objects(scene):
    mask, heard, k, depth, reask, tolerance = scene
    asked = []

    def ask(box):
        x0, y0, x1, y1 = box
        assert 0 <= x0 < x1 <= k.width and 0 <= y0 < y1 <= k.height
        asked.append(np.zeros_like(mask))
        asked[-1][y0:y1, x0:x1] = True
        return asked[-1]

    choice = choose_source(mask, heard, k, depth_m=depth, ask=ask if reask else None, tolerance_deg=tolerance)
    allowed = mask | (asked[0] if asked else False)
    assert choice.mask.shape == mask.shape and not (choice.mask & ~allowed).any()
    assert choice.found == bool(choice.mask.any())
    assert choice.found or choice.note.startswith("heard ")
    if not choice.in_view:
        assert not choice.found and choice.pixel is None and not asked
    if choice.found:
        assert choice.angle_deg <= tolerance
