"""Toy world drawing: shape masks, object placement and scene rendering.

Geometry (so that other programs can draw the same world):

* An object is a shape of side ``size`` pixels whose bounding square has its
  top-left corner at ``(x0, y0)``. A pixel (column x, row y) belongs to the
  shape when its centre ``(x + 0.5, y + 0.5)``, in local coordinates
  ``(u, v)`` relative to ``(x0, y0)``, satisfies:

  - circle: ``(u - s/2)^2 + (v - s/2)^2 <= (s/2)^2``
  - square: ``0 <= u < s`` and ``0 <= v < s`` (every pixel of the square)
  - triangle (upright, apex at the top centre, base on the bottom edge):
    ``|u - s/2| <= v / 2``

* Scene: each background channel is a constant drawn uniformly from the
  integers 100..150; objects are painted with their (jittered) flat colour;
  then Gaussian noise (sigma 8) is added to every pixel and the result is
  rounded and clipped to 0..255. An object's mask is exactly the pixels
  painted for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (230, 210, 40),
}
COLOUR_JITTER = 25
DEFAULT_IMAGE_SIZE = (160, 120)  # (W, H)
DEFAULT_SIZE_RANGE = (16, 40)  # object side in pixels at the default image size
BACKGROUND_RANGE = (100, 150)
NOISE_SIGMA = 8.0
GAP = 2  # minimum free pixels between the bounding squares of two objects


@dataclass(frozen=True)
class ToyObject:
    """One shape in a scene: ``shape`` in :data:`SHAPES`, ``colour`` in
    :data:`COLOURS`, the painted ``rgb``, the top-left corner ``(x0, y0)`` of
    its bounding square and its side ``size`` (pixels)."""

    shape: str
    colour: str
    rgb: tuple[int, int, int]
    x0: int
    y0: int
    size: int

    @property
    def name(self) -> str:
        """``"{colour} {shape}"``."""
        return f"{self.colour} {self.shape}"

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Tight box of the painted pixels: (x_min, y_min, x_max, y_max), inclusive."""
        return mask_box(shape_mask(self.shape, self.size), (self.x0, self.y0))

    def to_dict(self) -> dict:
        """Plain-dict form for sample metadata."""
        return {"shape": self.shape, "colour": self.colour, "rgb": self.rgb,
                "x0": self.x0, "y0": self.y0, "size": self.size, "box": self.box}


def shape_mask(shape: str, size: int) -> np.ndarray:
    """Return the ``size`` x ``size`` bool mask of ``shape`` (see module docstring)."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    c = np.arange(size) + 0.5
    u, v = c[None, :], c[:, None]
    half = size / 2.0
    if shape == "circle":
        return (u - half) ** 2 + (v - half) ** 2 <= half**2
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    return np.abs(u - half) <= v / 2.0


def mask_box(mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> tuple[int, int, int, int]:
    """Inclusive box (x_min, y_min, x_max, y_max) of the true pixels of ``mask``,
    shifted by ``offset`` = (dx, dy). Raises ValueError for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("mask is empty: it has no box")
    dx, dy = offset
    return (int(cols[0]) + dx, int(rows[0]) + dy, int(cols[-1]) + dx, int(rows[-1]) + dy)


def scaled_size_range(image_size: tuple[int, int]) -> tuple[int, int]:
    """Object size range scaled with the image: (16, 40) at 160x120, times
    min(W/160, H/120) otherwise (e.g. (64, 160) at 640x480)."""
    w, h = image_size
    k = min(w / DEFAULT_IMAGE_SIZE[0], h / DEFAULT_IMAGE_SIZE[1])
    lo, hi = DEFAULT_SIZE_RANGE
    return max(1, round(lo * k)), max(1, round(hi * k))


def jitter_colour(rng: np.random.Generator, colour: str) -> tuple[int, int, int]:
    """The base RGB of ``colour`` with each channel moved by an integer in
    [-25, 25], clipped to 0..255."""
    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {tuple(COLOURS)}, got {colour!r}")
    base = np.array(COLOURS[colour])
    rgb = np.clip(base + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3), 0, 255)
    return tuple(int(x) for x in rgb)


def _overlaps(a: tuple[int, int, int], b: tuple[int, int, int], gap: int) -> bool:
    """Whether two bounding squares (x0, y0, size) are closer than ``gap`` pixels."""
    ax, ay, asz = a
    bx, by, bsz = b
    return not (ax + asz + gap <= bx or bx + bsz + gap <= ax or ay + asz + gap <= by or by + bsz + gap <= ay)


def place_objects(
    rng: np.random.Generator,
    specs: list[tuple[str, str]],
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    size_range: tuple[int, int] | None = None,
    gap: int = GAP,
    max_tries: int = 200,
) -> list[ToyObject]:
    """Place one object per ``(colour, shape)`` in ``specs`` at random sizes and
    non-overlapping positions fully inside the image (rejection sampling).

    ``size_range`` (inclusive, pixels) defaults to :func:`scaled_size_range`.
    Per object, draws: jittered colour, size, then up to ``max_tries``
    positions; after a failure the whole layout is redrawn (up to 50 times),
    with sizes shrinking towards the lower bound. Raises ValueError if the
    objects cannot fit.
    """
    w, h = image_size
    lo, hi = size_range or scaled_size_range(image_size)
    if lo < 1 or hi < lo or hi > min(w, h):
        raise ValueError(f"size range {(lo, hi)} does not fit an image of {image_size}")
    for attempt in range(50):
        top = max(lo, hi - attempt * max(1, (hi - lo) // 10))
        placed: list[ToyObject] = []
        for colour, shape in specs:
            rgb = jitter_colour(rng, colour)
            size = int(rng.integers(lo, top + 1))
            for _ in range(max_tries):
                x0 = int(rng.integers(0, w - size + 1))
                y0 = int(rng.integers(0, h - size + 1))
                if not any(_overlaps((x0, y0, size), (o.x0, o.y0, o.size), gap) for o in placed):
                    placed.append(ToyObject(shape, colour, rgb, x0, y0, size))
                    break
            else:
                break
        if len(placed) == len(specs):
            return placed
    raise ValueError(f"could not place {len(specs)} objects in an image of {image_size}")


def object_mask(obj: ToyObject, image_size: tuple[int, int]) -> np.ndarray:
    """H x W bool mask of ``obj`` in an image of ``image_size`` = (W, H)."""
    w, h = image_size
    out = np.zeros((h, w), dtype=bool)
    local = shape_mask(obj.shape, obj.size)
    ys, xs = slice(obj.y0, obj.y0 + obj.size), slice(obj.x0, obj.x0 + obj.size)
    region = out[ys, xs]
    if region.shape != local.shape:
        raise ValueError(f"object {obj} is not fully inside an image of {image_size}")
    region[...] = local
    return out


def render_scene(
    objects: list[ToyObject],
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    rng: np.random.Generator | None = None,
    noise_sigma: float = NOISE_SIGMA,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw ``objects`` on a grey noisy background.

    Returns ``(image, masks)``: an H x W x 3 uint8 image and one H x W bool
    mask per object (in order). Later objects paint over earlier ones (placed
    objects never overlap). ``rng`` draws the background level and the noise
    (default: a generator seeded with 0).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    w, h = image_size
    background = rng.integers(BACKGROUND_RANGE[0], BACKGROUND_RANGE[1] + 1, size=3)
    canvas = np.empty((h, w, 3), dtype=np.float64)
    canvas[...] = background
    masks = []
    for obj in objects:
        m = object_mask(obj, image_size)
        canvas[m] = obj.rgb
        masks.append(m)
    canvas += rng.normal(0.0, noise_sigma, size=canvas.shape)
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return image, masks


def render_exemplar(
    rng: np.random.Generator,
    shape: str,
    colour: str,
    size: int,
    margin: int = 2,
    noise_sigma: float = NOISE_SIGMA,
) -> tuple[np.ndarray, np.ndarray]:
    """A lone ``colour`` ``shape`` of side ``size`` on black, with ``margin``
    black pixels around its bounding square. Noise is added to the object's
    pixels only (the background stays exactly black, as with a masked crop).

    Returns ``(crop, mask)``: (size + 2 margin)^2 x 3 uint8 and the matching bool mask.
    """
    side = size + 2 * margin
    mask = np.zeros((side, side), dtype=bool)
    mask[margin:margin + size, margin:margin + size] = shape_mask(shape, size)
    rgb = np.array(jitter_colour(rng, colour), dtype=np.float64)
    crop = np.zeros((side, side, 3), dtype=np.float64)
    crop[mask] = rgb + rng.normal(0.0, noise_sigma, size=(int(mask.sum()), 3))
    return np.clip(np.rint(crop), 0, 255).astype(np.uint8), mask


def make_scene(
    specs: list[tuple[str, str]],
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    size_range: tuple[int, int] | None = None,
) -> tuple[np.ndarray, list[np.ndarray], list[ToyObject]]:
    """One-call scene for demos: place the ``(colour, shape)`` objects of
    ``specs`` with ``numpy.random.default_rng(seed)`` and render them.
    Returns ``(image, masks, objects)``; e.g.
    ``make_scene([("red", "circle"), ("blue", "square")], (640, 480))``."""
    rng = np.random.default_rng(seed)
    objects = place_objects(rng, specs, image_size, size_range)
    image, masks = render_scene(objects, image_size, rng)
    return image, masks, objects
