"""AVSBench (v1) S4 (single source) and MS3 (multiple sources).

Layout, relative to the subset's data folder::

    S4:  audio_wav/{split}/{category}/{name}.wav
         visual_frames/{split}/{category}/{name}/{name}_{k}.png     k = 1..5
         gt_masks/{split}/{category}/{name}/{name}_{k}.png
    MS3: audio_wav/{split}/{name}.wav
         visual_frames/{name}/{name}.mp4_{k}.png
         gt_masks/{split}/{name}/{name}_{k}.png

The metadata CSV (``s4_meta_data.csv`` / ``ms3_meta_data.csv``) has a
header; the video name is the ``name`` (or ``video_id``) column, else the
first; the split is the ``split`` column (``train``, ``val``, ``test``); the
S4 category is the ``category`` column, else the third. Ground truth: S4
``train`` videos have a mask for frame 1 only; other S4 splits and all of
MS3 have masks for the five frames. A mask PNG is binary (non-zero =
sounding object).

Samples are one per annotated frame, task "audio", holding the video's
whole waveform (mono float32 at the file's rate; AnyRef resamples to
16 kHz). Answers: S4 ``"{category}[SEG]."`` (underscores as spaces),
MS3 ``"it is [SEG]."``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from ..sample import MS3_ANSWER_TEMPLATE, SEG_TOKEN, Sample, format_answer
from ._io import load_label_png, load_rgb, require_dir

SUBSETS = ("s4", "ms3")
FRAMES_PER_VIDEO = 5


@dataclass(frozen=True)
class AVSVideo:
    """One row of the metadata CSV."""

    name: str
    split: str
    category: str | None


def read_meta_csv(path: Path, subset: str) -> list[AVSVideo]:
    """All videos listed in an AVSBench metadata CSV (ValueError naming the file if malformed)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read metadata CSV ({exc})") from exc
    if not rows:
        raise ValueError(f"{path}: empty metadata CSV, expected a header row")
    header = [h.strip().lower() for h in rows[0]]
    if "split" not in header:
        raise ValueError(f"{path}: expected a 'split' column in the header, got {rows[0]}")
    i_name = next((header.index(c) for c in ("name", "video_id", "vid") if c in header), 0)
    i_split = header.index("split")
    i_cat = header.index("category") if "category" in header else 2
    if subset == "s4" and len(header) <= i_cat:
        raise ValueError(f"{path}: S4 metadata needs a 'category' column, got {rows[0]}")
    videos = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise ValueError(f"{path}: line {n} has {len(row)} fields, expected {len(header)}")
        cat = row[i_cat].strip() if subset == "s4" else None
        videos.append(AVSVideo(row[i_name].strip(), row[i_split].strip(), cat))
    return videos


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 waveform (channels averaged) and its sample rate."""
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise ValueError(f"{path}: cannot read audio ({exc})") from exc
    return data.mean(axis=1).astype(np.float32), int(rate)


class AVSBenchDataset:
    """Audio-reference samples of one AVSBench subset and split.

    Args:
        root: the subset's data folder (holding audio_wav, visual_frames, gt_masks).
        meta_csv: the subset's metadata CSV.
        subset: ``"s4"`` or ``"ms3"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
    """

    def __init__(self, root: str | Path, meta_csv: str | Path, subset: str = "s4", split: str = "test",
                 seg_token: str = SEG_TOKEN) -> None:
        if subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
        self.root, self.subset, self.split, self.seg_token = Path(root), subset, split, seg_token
        for folder in ("audio_wav", "visual_frames", "gt_masks"):
            require_dir(self.root / folder, f"AVSBench {subset} {folder}")
        self.videos = [v for v in read_meta_csv(Path(meta_csv), subset) if v.split == split]
        if not self.videos:
            raise ValueError(f"{meta_csv}: no videos in split {split!r}")
        frames = (1,) if (subset == "s4" and split == "train") else tuple(range(1, FRAMES_PER_VIDEO + 1))
        self.items = [(v, k) for v in range(len(self.videos)) for k in frames]

    def __len__(self) -> int:
        return len(self.items)

    def paths(self, video: AVSVideo, k: int) -> tuple[Path, Path, Path]:
        """(wav, frame png, mask png) of frame ``k`` (1-based) of ``video``."""
        r, n, s = self.root, video.name, video.split
        if self.subset == "s4":
            c = video.category
            return (r / "audio_wav" / s / c / f"{n}.wav", r / "visual_frames" / s / c / n / f"{n}_{k}.png",
                    r / "gt_masks" / s / c / n / f"{n}_{k}.png")
        return (r / "audio_wav" / s / f"{n}.wav", r / "visual_frames" / n / f"{n}.mp4_{k}.png",
                r / "gt_masks" / s / n / f"{n}_{k}.png")

    def _answer(self, video: AVSVideo) -> tuple[str | None, str]:
        if self.subset == "ms3":
            return None, MS3_ANSWER_TEMPLATE.format(seg_token=self.seg_token)
        name = video.category.replace("_", " ")
        return name, format_answer(name, self.seg_token)

    def __getitem__(self, i: int) -> Sample:
        v, k = self.items[i]
        video = self.videos[v]
        wav, frame, mask_path = self.paths(video, k)
        audio, rate = read_wav(wav)
        image = load_rgb(frame)
        mask = load_label_png(mask_path) > 0
        if mask.shape != image.shape[:2]:
            raise ValueError(f"{mask_path}: mask size {mask.shape} differs from frame {image.shape[:2]}")
        description, answer = self._answer(video)
        return Sample(image=image, task="audio", audio=audio, sample_rate=rate, description=description,
                      answer=answer, masks=[mask] if mask.any() else [],
                      metadata={"source": f"avsbench-{self.subset}", "video": video.name, "frame": k,
                                "video_index": v, "category": video.category})

    def video_samples(self, v: int) -> list[Sample]:
        """The annotated frames of video ``v`` in order (for per-video F-score)."""
        return [self[i] for i, (vi, _) in enumerate(self.items) if vi == v]
