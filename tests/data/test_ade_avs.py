"""ADE20K and AVSBench readers on tiny fixture files in their layouts."""

import json

import numpy as np
import pytest
import soundfile
from PIL import Image

from anyref_ros.data.readers import ADE20KDataset, AVSBenchDataset
from anyref_ros.data.readers.ade20k import load_class_names


@pytest.fixture
def ade_root(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    rng = np.random.default_rng(0)
    labels = {}
    for split, stem in (("training", "ADE_train_00000001"), ("training", "ADE_train_00000002"),
                        ("validation", "ADE_val_00000001")):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / "images" / split / f"{stem}.jpg")
        lab = np.zeros((24, 32), dtype=np.uint8)
        lab[:8] = 3
        lab[10:20, 5:15] = 5
        Image.fromarray(lab).save(root / "annotations" / split / f"{stem}.png")
        labels[stem] = lab
    (root / "objectInfo150.txt").write_text(
        "Idx\tRatio\tTrain\tVal\tName\n1\t0.1\t1\t1\twall\n3\t0.08\t1\t1\tsky\n"
        "5\t0.06\t1\t1\tperson;individual;someone;somebody;mortal;soul\n")
    return root, labels


def test_ade20k_samples(ade_root):
    root, labels = ade_root
    ds = ADE20KDataset(root, "training", seed=1)
    assert len(ds) == 2
    s = ds[0]
    assert s.task == "text" and s.query in ("sky", "person") and s.answer == f"{s.query}[SEG]."
    cls = s.metadata["class_index"]
    assert np.array_equal(s.mask, labels["ADE_train_00000001"] == cls)
    assert ADE20KDataset(root, "training", seed=1)[0].query == s.query
    every = list(ds.samples_for_image(1))
    assert [x.query for x in every] == ["sky", "person"]
    assert every[1].mask.sum() == 100
    assert len(ADE20KDataset(root, "validation")) == 1


def test_ade20k_class_files_and_errors(ade_root, tmp_path):
    root, _ = ade_root
    names = tmp_path / "classes.json"
    names.write_text(json.dumps(["wall", "building", "sky;heaven"]))
    assert load_class_names(names) == {1: "wall", 2: "building", 3: "sky"}
    csv_file = tmp_path / "objectInfo150.csv"
    csv_file.write_text("Idx,Ratio,Train,Val,Name\n1,0.1,1,1,wall\n")
    assert load_class_names(csv_file) == {1: "wall"}
    bad = tmp_path / "bad.txt"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="bad.txt.*Idx"):
        load_class_names(bad)
    with pytest.raises(ValueError, match="split"):
        ADE20KDataset(root, "test")
    (root / "annotations" / "training" / "ADE_train_00000002.png").unlink()
    with pytest.raises(ValueError, match="ADE_train_00000002.png"):
        ADE20KDataset(root, "training")


def _frame(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 16, 3), value, dtype=np.uint8)).save(path)


def _mask(path, box):
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((12, 16), dtype=np.uint8)
    if box:
        y0, y1, x0, x1 = box
        m[y0:y1, x0:x1] = 255
    Image.fromarray(m).save(path)


def _wav(path, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(16000) / 16000
    x = 0.5 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(str(path), np.stack([x] * channels, axis=1) if channels > 1 else x, 16000)


@pytest.fixture
def s4_root(tmp_path):
    root = tmp_path / "s4_data"
    videos = [("vidA", "train", "dog_barking"), ("vidB", "test", "male_speech")]
    (tmp_path / "s4_meta_data.csv").write_text(
        "name,category,split\n" + "".join(f"{n},{c},{s}\n" for n, s, c in videos))
    for name, split, cat in videos:
        _wav(root / "audio_wav" / split / cat / f"{name}.wav")
        for k in range(1, 6):
            _frame(root / "visual_frames" / split / cat / name / f"{name}_{k}.png", 10 * k)
            if split == "test" or k == 1:
                _mask(root / "gt_masks" / split / cat / name / f"{name}_{k}.png", None if k == 5 else (2, 6, 3, 9))
    return root, tmp_path / "s4_meta_data.csv"


def test_avsbench_s4(s4_root):
    root, meta = s4_root
    train = AVSBenchDataset(root, meta, "s4", "train")
    assert len(train) == 1  # S4 training videos have a mask for frame 1 only
    test = AVSBenchDataset(root, meta, "s4", "test")
    assert len(test) == 5
    s = test[1]
    assert s.task == "audio" and s.answer == "male speech[SEG]." and s.description == "male speech"
    assert s.audio.dtype == np.float32 and s.sample_rate == 16000 and s.audio.shape == (16000,)
    assert s.image.shape == (12, 16, 3) and s.image[0, 0, 0] == 20
    assert s.mask.sum() == 24 and s.metadata["frame"] == 2 and s.metadata["video"] == "vidB"
    assert test[4].masks == []  # an empty ground truth
    video = test.video_samples(0)
    assert [x.metadata["frame"] for x in video] == [1, 2, 3, 4, 5]


def test_avsbench_ms3(tmp_path):
    root = tmp_path / "ms3_data"
    (tmp_path / "ms3_meta_data.csv").write_text("video_id,split\nclip1,val\nclip2,train\n")
    _wav(root / "audio_wav" / "val" / "clip1.wav", channels=2)
    for k in range(1, 6):
        _frame(root / "visual_frames" / "clip1" / f"clip1.mp4_{k}.png", k)
        _mask(root / "gt_masks" / "val" / "clip1" / f"clip1_{k}.png", (0, 4, 0, 4))
    (root / "visual_frames" / "clip2").mkdir(parents=True)
    ds = AVSBenchDataset(root, tmp_path / "ms3_meta_data.csv", "ms3", "val", seg_token="<obj>")
    assert len(ds) == 5
    s = ds[4]
    assert s.answer == "it is <obj>." and s.description is None and s.mask.sum() == 16
    assert s.audio.ndim == 1 and s.image[0, 0, 0] == 5
    missing = AVSBenchDataset(root, tmp_path / "ms3_meta_data.csv", "ms3", "train")
    with pytest.raises(ValueError, match="clip2.wav"):
        missing[0]


def test_avsbench_errors(s4_root, tmp_path):
    root, meta = s4_root
    with pytest.raises(ValueError, match="no videos in split 'val'"):
        AVSBenchDataset(root, meta, "s4", "val")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,category\nvidA,dog\n")
    with pytest.raises(ValueError, match="bad.csv.*split"):
        AVSBenchDataset(root, bad, "s4", "train")
    with pytest.raises(ValueError, match="nowhere.audio_wav: expected a folder"):
        AVSBenchDataset(tmp_path / "nowhere", meta, "s4", "test")
    with pytest.raises(ValueError, match="subset"):
        AVSBenchDataset(root, meta, "avss", "test")
