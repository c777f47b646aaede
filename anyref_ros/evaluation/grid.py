"""Picture grid: one row per sample with the image, the ground truth overlay
and the prediction overlay, and a caption line (query, answer, IoU) below."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..scoring.runner import GridRow, caption_for  # noqa: F401  (rows come from the runner)

GT_COLOUR = (0, 200, 0)
PRED_COLOUR = (230, 30, 200)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` (H x W bool) with at least one 4-neighbour outside it
    (the image border counts as outside)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def overlay(
    image: np.ndarray, mask: np.ndarray | None, colour: tuple[int, int, int], alpha: float = 0.5,
    outline: bool = True,
) -> np.ndarray:
    """Blend ``colour`` into the pixels of ``mask`` (H x W bool) of ``image``
    (H x W x 3 uint8) and, with ``outline``, paint the mask's outline in solid
    ``colour`` (visible on objects of the same colour). Returns a new uint8
    image; ``mask=None`` copies the image."""
    out = image.astype(np.float32).copy()
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} differs from image {image.shape[:2]}")
        out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(colour, dtype=np.float32)
        if outline:
            out[mask_outline(mask)] = colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _tile(array: np.ndarray, height: int) -> Image.Image:
    img = Image.fromarray(array)
    width = max(1, round(img.width * height / img.height))
    return img.resize((width, height), Image.NEAREST)


def make_grid(rows: list[GridRow], tile_height: int = 160, pad: int = 4, caption_height: int = 16) -> Image.Image:
    """Compose the grid as a Pillow RGB image. Tiles are scaled to
    ``tile_height`` (aspect kept); captions are drawn under each row with
    Pillow's default font. Raises ValueError for an empty row list."""
    if not rows:
        raise ValueError("make_grid needs at least one row")
    font = ImageFont.load_default()
    rendered = []
    for row in rows:
        tiles = [_tile(row.image, tile_height), _tile(overlay(row.image, row.gt_mask, GT_COLOUR), tile_height),
                 _tile(overlay(row.image, row.pred_mask, PRED_COLOUR), tile_height)]
        rendered.append((tiles, row.caption))
    width = max(sum(t.width for t in tiles) + pad * (len(tiles) + 1) for tiles, _ in rendered)
    row_h = tile_height + caption_height + pad
    canvas = Image.new("RGB", (width, pad + row_h * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (tiles, caption) in enumerate(rendered):
        y = pad + r * row_h
        x = pad
        for tile in tiles:
            canvas.paste(tile, (x, y))
            x += tile.width + pad
        draw.text((pad, y + tile_height + 2), caption, fill=(0, 0, 0), font=font)
    return canvas


def save_grid(rows: list[GridRow], path: str | Path, **kwargs) -> Path:
    """Write :func:`make_grid` as a PNG at ``path`` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_grid(rows, **kwargs).save(path, format="PNG")
    return path
