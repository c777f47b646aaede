"""The COCO reader's masks on the committed fixture (tests/fixtures/coco):
equal to pycocotools' own decoding, and to the masks our former decoder
gave (``masks_before.npz``, written by anyref_ros.data.masks at commit
e223d08, before pycocotools replaced it) except the boundary pixels where
the two polygon rasterisers differ.

The fixture holds an axis-aligned polygon (ann 1), a triangle with
fractional vertices (2), a two-part polygon (3), compressed RLE (4, 6: the
latter with pixels in both corners) and uncompressed crowd RLE (5)."""

from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from anyref_ros.data.readers import CocoIndex, CocoSegmentation

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "coco"
RLE_ANNS = (4, 5, 6)
#: pixels (row, col) the old rasteriser (pixel centre inside) set and pycocotools does not
BOUNDARY_DIFFERENCES = {1: set(), 2: {(2, 12), (2, 15), (8, 13)}, 3: {(13, 7), (13, 8), (13, 9)}}


@pytest.fixture(scope="module")
def coco():
    return CocoIndex(FIXTURE / "instances.json")


@pytest.fixture(scope="module")
def before():
    with np.load(FIXTURE / "masks_before.npz") as data:
        return {int(k.split("_")[1]): data[k] for k in data.files}


def pycocotools_mask(ann, img):
    """What the COCO API's annToMask does (polygons -> RLEs -> merged -> decoded)."""
    seg, h, w = ann["segmentation"], img["height"], img["width"]
    if isinstance(seg, list):
        rle = coco_mask.merge(coco_mask.frPyObjects(seg, h, w))
    elif isinstance(seg["counts"], list):
        rle = coco_mask.frPyObjects(seg, h, w)
    else:
        rle = {"size": seg["size"], "counts": seg["counts"].encode()}
    return coco_mask.decode(rle).astype(bool)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_reader_masks_equal_pycocotools(coco):
    assert len(coco.annotations) == 6
    for ann_id, ann in coco.annotations.items():
        img = coco.images[ann["image_id"]]
        assert np.array_equal(coco.mask(ann), pycocotools_mask(ann, img)), ann_id


def test_rle_masks_equal_the_former_decoder(coco, before):
    for ann_id in RLE_ANNS:
        assert np.array_equal(coco.mask(coco.annotations[ann_id]), before[ann_id]), ann_id
    assert before[6][0, 0] and before[6][11, 15] and before[5].sum() == 23


def _distance_to_edges(x, y, polygons):
    best = np.inf
    for poly in polygons:
        pts = np.asarray(poly, float).reshape(-1, 2)
        for a, b in zip(pts, np.roll(pts, -1, axis=0)):
            t = np.clip(np.dot([x, y] - a, b - a) / np.dot(b - a, b - a), 0, 1)
            best = min(best, float(np.hypot(*(a + t * (b - a) - [x, y]))))
    return best


def test_polygon_masks_equal_the_former_decoder_but_on_edges(coco, before):
    for ann_id, expected_diff in BOUNDARY_DIFFERENCES.items():
        ann = coco.annotations[ann_id]
        now, old = coco.mask(ann), before[ann_id]
        assert not (now & ~old).any(), ann_id  # pycocotools never adds a pixel here
        diff = {(int(r), int(c)) for r, c in zip(*np.nonzero(old & ~now))}
        assert diff == expected_diff, ann_id
        for r, c in diff:  # each one is a pixel whose centre lies on (or within 0.1 px of) an edge
            assert _distance_to_edges(c + 0.5, r + 0.5, ann["segmentation"]) < 0.1, (ann_id, r, c)
    square = np.zeros((20, 24), dtype=bool)
    square[2:8, 2:10] = True  # [2, 2, 10, 2, 10, 8, 2, 8] covers pixels x 2..9, y 2..7
    assert np.array_equal(coco.mask(coco.annotations[1]), square)


def test_segmentation_samples_from_the_fixture(coco):
    ds = CocoSegmentation(FIXTURE / "instances.json", FIXTURE)
    assert [(ds.pairs[i]) for i in range(len(ds))] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    s = ds[2]  # image 2, "cup": ann 6 only (ann 5 is crowd)
    assert s.query == "cup" and s.image.shape == (12, 16, 3)
    assert np.array_equal(s.mask, coco.mask(coco.annotations[6]))
    assert len(CocoSegmentation(FIXTURE / "instances.json", FIXTURE, include_crowd=True)[2].masks) == 2
