"""COCO instances and RefCOCO (refer layout) readers on tiny fixture files."""

import json
import pickle
import shutil

import numpy as np
import pytest

from anyref_ros.data.readers import CocoExemplars, CocoIndex, CocoSegmentation, ReferDataset


def test_coco_masks_from_polygons_and_rle(coco_files):
    path, _, expected = coco_files
    coco = CocoIndex(path)
    for ann_id, mask in expected.items():
        assert np.array_equal(coco.mask(coco.annotations[ann_id]), mask), ann_id


def test_coco_category_segmentation(coco_files):
    path, root, expected = coco_files
    ds = CocoSegmentation(path, root)
    assert len(ds) == 3  # (1, cat), (1, dog), (2, cat); the crowd-only dog of image 3 is left out
    s = ds[2]
    assert s.task == "text" and s.query == "cat" and s.answer == "cat[SEG]."
    assert len(s.masks) == 2 and np.array_equal(s.mask, expected[3] | expected[4])
    assert s.image.shape == (30, 40, 3) and s.metadata["ann_ids"] == [3, 4]
    assert len(CocoSegmentation(path, root, include_crowd=True)) == 4


def test_coco_exemplars(coco_files):
    path, root, expected = coco_files
    ds = CocoExemplars(path, root, seed=3)
    assert len(ds) == 2  # only "cat" occurs in two images
    s = ds[0]  # image 1, cat: exemplar from image 2 (ann 3 or 4)
    assert s.task == "exemplar" and s.answer == "cat[SEG]." and np.array_equal(s.mask, expected[1])
    assert s.metadata["exemplar_ann_id"] in (3, 4)
    assert s.exemplar.shape[:2] == s.exemplar_mask.shape
    assert (s.exemplar[~s.exemplar_mask] == 0).all()
    size = {3: (3, 3), 4: (8, 8)}[s.metadata["exemplar_ann_id"]]  # box trimmed by 1 px per side
    assert s.exemplar.shape[:2] == size
    assert ds[1].metadata["exemplar_ann_id"] == 1
    again = CocoExemplars(path, root, seed=3)[0]
    assert np.array_equal(again.exemplar, s.exemplar)


def test_coco_malformed(tmp_path, coco_files):
    path, root, _ = coco_files
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="bad.json.*categories"):
        CocoIndex(bad)
    data = json.loads(path.read_text())
    del data["annotations"][0]["segmentation"]
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"annotations\[0\]"):
        CocoIndex(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        CocoIndex(bad)
    (root / "COCO_train2014_000000000001.png").unlink()
    with pytest.raises(ValueError, match="000000000001.png"):
        CocoSegmentation(path, root)[0]


REFS = [
    {"ref_id": 10, "ann_id": 1, "image_id": 1, "split": "train", "category_id": 1,
     "sentences": [{"sent": "the cat left", "tokens": ["the", "cat", "left"]}, {"sent": "small  cat"}]},
    {"ref_id": 11, "ann_id": 2, "image_id": 1, "split": "val", "category_id": 2,
     "sentences": [{"sent": "brown dog"}]},
    {"ref_id": 12, "ann_id": 3, "image_id": 2, "split": "val", "category_id": 1,
     "sentences": [{"sent": "cat on top"}, {"sent": "top cat"}]},
]


@pytest.fixture
def refer_dir(tmp_path, coco_files):
    path, root, expected = coco_files
    folder = tmp_path / "refcoco"
    folder.mkdir()
    shutil.copy(path, folder / "instances.json")
    with open(folder / "refs(unc).p", "wb") as f:
        pickle.dump(REFS, f)
    return folder, root, expected


def test_refer_text_samples(refer_dir):
    folder, root, expected = refer_dir
    ds = ReferDataset(folder, root, split="val")
    assert len(ds) == 3
    assert [ds[i].query for i in range(3)] == ["brown dog", "cat on top", "top cat"]
    s = ds[0]
    assert s.task == "text" and s.answer == "brown dog[SEG]." and np.array_equal(s.mask, expected[2])
    assert s.metadata["ref_id"] == 11 and s.metadata["category"] == "dog"
    last = ReferDataset(folder, root, split="val", sentences="last")
    assert [last[i].query for i in range(len(last))] == ["brown dog", "top cat"]


def test_refer_region_description(refer_dir):
    folder, root, expected = refer_dir
    ds = ReferDataset(folder, root, split="train", task="region")
    assert len(ds) == 2
    s = ds[1]
    assert s.task == "region" and s.box == (2, 2, 11, 11)
    assert s.answer == "small cat[SEG]." and np.array_equal(s.mask, expected[1])
    no_mask = ReferDataset(folder, root, split="train", task="region", reg_with_mask=False, seg_token="<obj>")
    assert no_mask[0].answer == "the cat left."


def test_refer_errors(refer_dir):
    folder, root, _ = refer_dir
    with pytest.raises(ValueError, match=r"splits present: \['train', 'val'\]"):
        ReferDataset(folder, root, split="testA")
    with pytest.raises(ValueError, match=r"refs\(google\)\.p"):
        ReferDataset(folder, root, split="val", split_by="google")
    with open(folder / "refs(umd).p", "wb") as f:
        pickle.dump({"not": "a list"}, f)
    with pytest.raises(ValueError, match="list of refs"):
        ReferDataset(folder, root, split="val", split_by="umd")
    with open(folder / "refs(umd).p", "wb") as f:
        pickle.dump([dict(REFS[1], ann_id=99)], f)
    with pytest.raises(ValueError, match="annotation 99"):
        ReferDataset(folder, root, split="val", split_by="umd")
    with open(folder / "refs(umd).p", "wb") as f:
        pickle.dump([{"ref_id": 1}], f)
    with pytest.raises(ValueError, match="ref 0 must be a dict with keys"):
        ReferDataset(folder, root, split="val", split_by="umd")
