"""ADE20K in the SceneParsing (ADEChallengeData2016) layout.

::

    root/images/{training,validation}/ADE_*.jpg
    root/annotations/{training,validation}/ADE_*.png   # class index per pixel, 0 = other
    root/objectInfo150.txt (or .csv)                   # class names, index 1..150

The class list is a tab- or comma-separated table with a header holding
``Idx`` and ``Name`` (names such as ``person;individual;...``: the first
synonym is used), or a JSON list of names (list position i is class i + 1).

Samples are "text" queries naming one class present in the image; the mask
is every pixel of that class.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..sample import SEG_TOKEN, Sample, format_answer
from ._io import load_label_png, load_rgb, require_dir

SPLITS = ("training", "validation")
_CLASS_FILES = ("objectInfo150.txt", "objectInfo150.csv", "ade20k_classes.json")


def load_class_names(path: Path) -> dict[int, str]:
    """Class index -> name from a class file (see module docstring)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read class names ({exc})") from exc
    if Path(path).suffix == ".json":
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON ({exc})") from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: expected a JSON list of class names")
        return {i + 1: n.split(";")[0].strip() for i, n in enumerate(names)}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    delimiter = "\t" if lines and "\t" in lines[0] else ","
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "idx" not in header or "name" not in header:
        raise ValueError(f"{path}: expected a header with 'Idx' and 'Name' columns, got {rows[0] if rows else []}")
    i_idx, i_name = header.index("idx"), header.index("name")
    out = {}
    for n, row in enumerate(rows[1:], start=2):
        try:
            out[int(row[i_idx])] = row[i_name].split(";")[0].strip()
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{path}: line {n}: expected an integer Idx and a Name") from exc
    return out


class ADE20KDataset:
    """Class-query samples of one split. Item i is image i (sorted by name)
    with one present class drawn by ``numpy.random.default_rng([seed, i])``;
    :meth:`samples_for_image` gives every present class."""

    def __init__(self, root: str | Path, split: str = "training", class_file: str | Path | None = None,
                 seed: int = 0, seg_token: str = SEG_TOKEN) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        root = Path(root)
        image_dir = require_dir(root / "images" / split, "ADE20K .jpg images")
        ann_dir = require_dir(root / "annotations" / split, "ADE20K .png class-index annotations")
        if class_file is None:
            found = [root / n for n in _CLASS_FILES if (root / n).is_file()]
            if not found:
                raise ValueError(f"{root}: no class list found (looked for {list(_CLASS_FILES)})")
            class_file = found[0]
        self.class_names = load_class_names(Path(class_file))
        self.images = sorted(image_dir.glob("*.jpg"))
        self.annotations = [ann_dir / f"{p.stem}.png" for p in self.images]
        for ann in self.annotations:
            if not ann.is_file():
                raise ValueError(f"{ann}: missing annotation for image {ann.stem}.jpg")
        self.seed, self.seg_token = seed, seg_token

    def __len__(self) -> int:
        return len(self.images)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        image = load_rgb(self.images[i])
        labels = load_label_png(self.annotations[i])
        if labels.shape != image.shape[:2]:
            raise ValueError(f"{self.annotations[i]}: size {labels.shape} differs from its image {image.shape[:2]}")
        present = [int(c) for c in np.unique(labels) if int(c) in self.class_names]
        return image, labels, present

    def _sample(self, i: int, image: np.ndarray, labels: np.ndarray, cls: int) -> Sample:
        name = self.class_names[cls]
        return Sample(image=image, task="text", query=name, description=name,
                      answer=format_answer(name, self.seg_token), masks=[labels == cls],
                      metadata={"source": "ade20k", "file": self.images[i].name, "class_index": cls})

    def __getitem__(self, i: int) -> Sample:
        image, labels, present = self._load(i)
        if not present:
            raise ValueError(f"{self.annotations[i]}: no labelled class in this annotation")
        cls = present[int(np.random.default_rng([self.seed, i]).integers(len(present)))]
        return self._sample(i, image, labels, cls)

    def samples_for_image(self, i: int) -> Iterator[Sample]:
        """One sample per class present in image i (class-index order)."""
        image, labels, present = self._load(i)
        for cls in present:
            yield self._sample(i, image, labels, cls)
