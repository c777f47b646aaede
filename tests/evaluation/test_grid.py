"""Picture grid: layout and overlay colours."""

import numpy as np
import pytest
from PIL import Image

from anyref_ros.data import ToyWorld
from anyref_ros.evaluation import iou
from anyref_ros.evaluation.grid import GT_COLOUR, GridRow, caption_for, make_grid, mask_outline, overlay, save_grid


def test_overlay_blends_only_masked_pixels():
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    out = overlay(image, mask, (200, 0, 0), alpha=0.5, outline=False)
    assert tuple(out[0, 0]) == (150, 50, 50) and tuple(out[1, 1]) == (100, 100, 100)
    square = np.zeros((5, 5), dtype=bool)
    square[1:4, 1:4] = True
    assert mask_outline(square).sum() == 8 and not mask_outline(square)[2, 2]
    outlined = overlay(np.full((5, 5, 3), 100, dtype=np.uint8), square, (200, 0, 0))
    assert tuple(outlined[1, 1]) == (200, 0, 0) and tuple(outlined[2, 2]) == (150, 50, 50)
    assert np.array_equal(overlay(image, None, (1, 2, 3)), image)
    with pytest.raises(ValueError):
        overlay(image, np.zeros((2, 2), dtype=bool), (0, 0, 0))


def test_grid_png(tmp_path):
    world = ToyWorld(0)
    rows = []
    for i in range(3):
        s = world.sample(i, task="text")
        pred = np.roll(s.mask, 3, axis=1)
        rows.append(GridRow(s.image, s.mask, pred, caption_for(s.query, iou(pred, s.mask), s.answer)))
    path = save_grid(rows, tmp_path / "out" / "grid.png", tile_height=120, pad=4, caption_height=16)
    img = Image.open(path)
    assert img.format == "PNG"
    assert img.size == (4 + 3 * (160 + 4), 4 + 3 * (120 + 16 + 4))
    arr = np.asarray(img.convert("RGB")).astype(int)
    ys, xs = np.nonzero(rows[0].gt_mask)
    # first row, middle tile: ground-truth pixels are tinted green
    tinted = arr[4 + ys, 4 + 164 + xs]
    assert (tinted[:, 1] > tinted[:, 0]).mean() > 0.9 and GT_COLOUR[1] > GT_COLOUR[0]
    assert caption_for("red circle", 0.5) == "red circle | IoU 0.50"
    with pytest.raises(ValueError):
        make_grid([])
