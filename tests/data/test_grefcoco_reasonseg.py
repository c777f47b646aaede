"""gRefCOCO and ReasonSeg readers on the committed, hand-written fixtures
(tests/fixtures/grefcoco, tests/fixtures/reasonseg); expected masks are
drawn by hand from the files' coordinates."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from anyref_ros.data.readers import READERS, GRefCocoDataset, ReasonSegDataset
from anyref_ros.data.readers.reasonseg import shapes_to_label

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GREF, COCO_IMAGES, REASONSEG = FIXTURES / "grefcoco", FIXTURES / "coco", FIXTURES / "reasonseg"


def rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


CUP_LEFT = rect(20, 24, 2, 10, 2, 8)  # polygon [2, 2, 8, 2, 8, 10, 2, 10]
CUP_RIGHT = rect(20, 24, 12, 18, 14, 20)  # compressed RLE
BOWL = rect(12, 16, 1, 4, 1, 5)  # polygon [1, 1, 5, 1, 5, 4, 1, 4]; ann 14 is crowd


def test_grefcoco_single_multi_and_no_target():
    ds = GRefCocoDataset(GREF, COCO_IMAGES, split="val")
    assert len(ds) == 5 and ds.no_target_count == 1
    assert [ds[i].query for i in range(5)] == ["the cup on the left", "both cups", "the two cups", "the red bowl",
                                              "every bowl"]
    one = ds[0]
    assert one.task == "text" and one.answer == "the cup on the left[SEG]." and np.array_equal(one.mask, CUP_LEFT)
    two = ds[1]
    assert len(two.masks) == 2 and np.array_equal(two.mask, CUP_LEFT | CUP_RIGHT)
    assert two.metadata["ann_ids"] == [11, 12] and two.metadata["gres"] and not two.metadata["no_target"]
    none = ds[3]
    assert none.masks == [] and not none.mask.any() and none.mask.shape == (20, 24)
    assert none.metadata["absent"] and none.metadata["no_target"] and none.description is None
    assert none.answer == "It is not in view." and "[SEG]" not in none.answer
    crowd_left_out = ds[4]
    assert crowd_left_out.metadata["ann_ids"] == [13] and np.array_equal(crowd_left_out.mask, BOWL)
    assert len(GRefCocoDataset(GREF, COCO_IMAGES, split="val", sentences="last")) == 4
    train = GRefCocoDataset(GREF, COCO_IMAGES, split="train", absent_answer="No such object.")
    assert len(train) == 1 and train[0].answer == "No such object." and train[0].image.shape == (12, 16, 3)


def _copy_gref(tmp_path, refs):
    folder = tmp_path / "grefcoco"
    folder.mkdir()
    shutil.copy(GREF / "instances.json", folder / "instances.json")
    (folder / "grefs(unc).json").write_text(json.dumps(refs))
    return folder


def test_grefcoco_errors(tmp_path):
    refs = json.loads((GREF / "grefs(unc).json").read_text())
    with pytest.raises(ValueError, match=r"splits present: \['train', 'val'\]"):
        GRefCocoDataset(GREF, COCO_IMAGES, split="testA")
    with pytest.raises(ValueError, match=r"neither grefs\(umd\)\.json nor grefs\(umd\)\.p"):
        GRefCocoDataset(GREF, COCO_IMAGES, split="val", split_by="umd")
    folder = _copy_gref(tmp_path, [dict(refs[2], ann_id=[11])])
    with pytest.raises(ValueError, match="marked no_target but lists annotations"):
        GRefCocoDataset(folder, COCO_IMAGES, split="val")
    (folder / "grefs(unc).json").write_text(json.dumps([dict(refs[0], ann_id=[13])]))
    with pytest.raises(ValueError, match="annotation 13, missing from .* or of another image"):
        GRefCocoDataset(folder, COCO_IMAGES, split="val")
    (folder / "grefs(unc).json").write_text(json.dumps([{"ref_id": 1}]))
    with pytest.raises(ValueError, match="ref 0 must be a dict with keys"):
        GRefCocoDataset(folder, COCO_IMAGES, split="val")
    (folder / "grefs(unc).json").write_text("{broken")
    with pytest.raises(ValueError, match=r"grefs\(unc\)\.json: cannot read JSON"):
        GRefCocoDataset(folder, COCO_IMAGES, split="val")
    with pytest.raises(ValueError, match="absent_answer"):
        GRefCocoDataset(GREF, COCO_IMAGES, split="val", absent_answer="none[SEG].")


def test_reasonseg_first_and_all_queries():
    ds = ReasonSegDataset(REASONSEG, "val")
    assert len(ds) == 2  # one sample per image: its first query (LISA's evaluation)
    a = ds[0]
    assert a.task == "text" and a.query == "what holds the coffee?" and a.answer == "it is [SEG]."
    assert a.description is None and a.metadata["is_sentence"] is False and a.metadata["file"] == "scene_a.jpg"
    ignore = rect(20, 24, 12, 15, 12, 15)  # the "ignore" square, drawn after the larger target
    # target 1: vertices truncated to (2, 2) .. (9, 7), filled with its outline; "flag" is skipped
    assert np.array_equal(a.mask, rect(20, 24, 2, 8, 2, 10) | (rect(20, 24, 10, 19, 10, 21) & ~ignore))
    assert np.array_equal(a.metadata["ignore_mask"], ignore)
    b = ds[1]  # Windows-1252 file; the target and the ignore square have equal areas: the one listed first wins
    assert b.query == "If I want a caf\u00e9 au lait, which object should I pick up?" and b.metadata["is_sentence"]
    assert np.array_equal(b.mask, rect(16, 18, 1, 9, 1, 9)) and b.metadata["ignore_mask"] is None
    every = ReasonSegDataset(REASONSEG, "val", queries="all")
    assert [s.query for s in (every[i] for i in range(len(every)))][:2] == [
        "what holds the coffee?", "Where would you pour the milk from?"]
    assert len(every) == 3 and len(ReasonSegDataset(REASONSEG / "val", split=None)) == 2


def test_reasonseg_errors(tmp_path):
    with pytest.raises(ValueError, match="expected a folder of ReasonSeg"):
        ReasonSegDataset(REASONSEG, "test")
    folder = tmp_path / "val"
    folder.mkdir()
    shutil.copy(REASONSEG / "val" / "scene_a.json", folder / "x.json")
    with pytest.raises(ValueError, match="x.jpg: missing image"):
        ReasonSegDataset(tmp_path, "val")
    shutil.copy(REASONSEG / "val" / "scene_a.jpg", folder / "x.jpg")
    (folder / "x.json").write_text(json.dumps({"text": [], "shapes": []}))
    with pytest.raises(ValueError, match="non-empty list"):
        ReasonSegDataset(tmp_path, "val", queries="all")
    (folder / "x.json").write_text(json.dumps({"text": ["q"], "shapes": [{"label": "target", "points": [[0, 1e9]]}]}))
    with pytest.raises(ValueError, match=r"shapes\[0\]: points must be finite"):
        ReasonSegDataset(tmp_path, "val")[0]
    with pytest.raises(ValueError, match="queries"):
        ReasonSegDataset(tmp_path, "val", queries="last")
    label = shapes_to_label([{"label": "target", "points": [[0, 0], [3, 0], [3, 2]]}], 4, 5)
    assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1}


def test_registry_names_the_new_readers():
    assert READERS["grefcoco"] is GRefCocoDataset and READERS["reasonseg"] is ReasonSegDataset
    from anyref_ros.training.data import _reader

    assert _reader("grefcoco") is GRefCocoDataset
