"""anyref_ros.drawing on real arrays: the object keeps its own colours, an
outline surrounds it, the surround changes, and a "not found" answer is
drawn as such, with no outline."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from anyref_ros.drawing import (DARK_COLOUR, MASK_COLOUR, NOT_FOUND_COLOUR, NOT_FOUND_DIM, draw_referral,
                                outline_width)

H, W = 480, 640


def scene(object_rgb=(40, 200, 60)) -> tuple[np.ndarray, np.ndarray]:
    """A noisy grey frame with a square of ``object_rgb`` in its lower half."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(90, 170, size=(H, W, 3)).astype(np.uint8)
    mask = np.zeros((H, W), bool)
    mask[250:350, 300:420] = True
    rgb[mask] = object_rgb
    return rgb, mask


def ring(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """Pixels between ``inner`` and ``outer`` px outside the mask (square dilation)."""
    grow = lambda r: cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool)
    return grow(outer) & ~grow(inner) if inner else grow(outer) & ~mask


def test_found_object_keeps_its_colours_and_gets_an_outline():
    rgb, mask = scene()
    before = rgb.copy()
    out = draw_referral(rgb, mask, (300, 250, 419, 349), ["answer: green square"],
                        found=True, score=0.93, label="green square")
    assert np.array_equal(rgb, before), "the input frame must not be changed"
    assert out.shape == rgb.shape and out.dtype == np.uint8
    # every object pixel keeps its exact colour (the text band is at the top, far from it)
    assert np.array_equal(out[mask], rgb[mask])
    # an outline of at least 2 px right outside the mask, in the outline colour
    width = outline_width(rgb.shape)
    assert width >= 2
    first = ring(mask, 0, 1)
    assert (out[first] == MASK_COLOUR).all(axis=1).mean() > 0.95
    second = ring(mask, 1, 2)
    assert (out[second] == MASK_COLOUR).all(axis=1).mean() > 0.9
    # a dark edge outside it keeps the line visible on a light surround
    assert (out[ring(mask, width, width + 1)] == DARK_COLOUR).all(axis=1).mean() > 0.5
    # the surround, away from outline, box and text, is darkened
    far = ~ring(mask, 0, 20) & ~mask
    far[:120] = False
    assert (out[far].astype(int).sum(axis=1) < rgb[far].astype(int).sum(axis=1)).mean() > 0.99


def test_dark_object_gets_a_lightened_surround_and_a_dark_outline():
    rgb, mask = scene(object_rgb=(20, 20, 90))
    out = draw_referral(rgb, mask)
    assert np.array_equal(out[mask], rgb[mask])
    assert (out[ring(mask, 0, 1)] == DARK_COLOUR).all(axis=1).mean() > 0.95
    far = ~ring(mask, 0, 20) & ~mask
    assert (out[far].astype(int).sum(axis=1) > rgb[far].astype(int).sum(axis=1)).mean() > 0.99


def test_outline_grows_with_the_image():
    assert outline_width((120, 160)) == 2
    assert 2 <= outline_width((480, 640)) <= 3
    assert outline_width((1080, 1920)) > outline_width((480, 640))


def test_text_band_moves_below_an_object_at_the_top():
    rgb, _ = scene()
    mask = np.zeros((H, W), bool)
    mask[5:60, 100:200] = True
    rgb[mask] = (40, 200, 60)
    out = draw_referral(rgb, mask, None, ["a line"], found=True, score=0.5, label="green square")
    assert np.array_equal(out[mask], rgb[mask])
    # the band (darkened strongly, with text) is at the bottom
    assert out[-5:].astype(int).mean() < 0.5 * rgb[-5:].astype(int).mean()


def test_not_found_is_dimmed_with_a_banner_and_no_outline():
    rgb, _ = scene()
    empty = np.zeros((H, W), bool)
    out = draw_referral(rgb, empty, None, ["answer: It is not in view"], found=False, score=0.0, label="blue triangle")
    assert not np.array_equal(out, rgb)
    # below the banner and text, the frame is exactly the dimmed input: no outline or box anywhere
    band = 120
    dimmed = (rgb.astype(np.float32) * NOT_FOUND_DIM).astype(np.uint8)
    assert np.array_equal(out[band:], dimmed[band:])
    assert not (out[band:] == MASK_COLOUR).all(axis=2).any()
    # the banner is red at its left and right ends
    assert (out[2, -3] == NOT_FOUND_COLOUR).all() and (out[2, 1] == NOT_FOUND_COLOUR).all()
    # an empty mask without ``found`` is drawn the same way
    assert np.array_equal(draw_referral(rgb, empty, None, ["answer: It is not in view"], score=0.0,
                                        label="blue triangle"), out)
    bare = draw_referral(rgb, None, found=False)  # still says "not found"
    assert (bare[2, 1] == NOT_FOUND_COLOUR).all() and np.array_equal(bare[band:], dimmed[band:])


def test_rejected_mask_is_dashed_not_outlined():
    rgb, mask = scene()
    out = draw_referral(rgb, mask, (300, 250, 419, 349), found=False, score=0.2, label="green square")
    dimmed = (rgb.astype(np.float32) * NOT_FOUND_DIM).astype(np.uint8)
    # the object is dimmed like the rest (not highlighted), its border dashed: some border pixels drawn, some not
    inside = ring(~mask, 3, 4) & mask
    assert np.array_equal(out[inside], dimmed[inside])
    border = ring(mask, 0, 1)
    drawn = (out[border] != dimmed[border]).any(axis=1)
    assert 0.2 < drawn.mean() < 0.9


def test_the_node_call_still_works():
    """publishing.py calls draw_referral(rgb, mask, box, lines)."""
    rgb, mask = scene()
    out = draw_referral(rgb, mask, (300, 250, 419, 349), ["red circle: red circle", "score 0.93  40 ms"])
    assert np.array_equal(out[mask], rgb[mask])
    assert not np.array_equal(out, rgb)


def test_bad_shapes_say_what_was_expected():
    rgb, mask = scene()
    with pytest.raises(ValueError, match="mask: expected shape"):
        draw_referral(rgb, mask[:10])
    with pytest.raises(ValueError, match="HxWx3"):
        draw_referral(rgb[..., 0], mask)
