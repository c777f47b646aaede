"""ReasonSeg (reasoning segmentation: Lai et al., LISA, CVPR 2024) in its
release layout.

::

    root/{train,val,test}/NAME.jpg
    root/{train,val,test}/NAME.json

Each JSON file (labelme style, UTF-8 or Windows-1252) holds

* ``text``: the queries about the image (a list of strings; a short phrase
  or, with ``is_sentence`` true, a long sentence);
* ``is_sentence``: whether the queries are sentences;
* ``shapes``: polygons, each ``{"label": ..., "points": [[x, y], ...]}``;
  label ``target`` marks the referent, a label containing ``ignore`` a region
  left out of the scores, label ``flag`` nothing (skipped).

The masks follow the dataset's own drawing: vertices truncated to integer
pixels, each polygon filled together with its 1-pixel outline, polygons
drawn from the largest area to the smallest (a smaller one drawn later
wins where they overlap; of two with equal areas, the one listed first). Samples are task "text": the query, the target
mask in ``masks`` (none when no target pixel is left), the ignore region as
``metadata["ignore_mask"]`` (H x W bool, or None), which ``anyref-eval``
leaves out of cIoU/gIoU. The answer names nothing: ``"it is [SEG]."``.
With ``queries="first"`` (LISA's evaluation) each image gives one sample,
with ``"all"`` one per query.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..sample import MS3_ANSWER_TEMPLATE, SEG_TOKEN, Sample
from ._io import load_rgb, require_dir

QUERY_CHOICES = ("first", "all")
TARGET, IGNORE = 1, 255
#: Most shapes read from one file (each is rasterised once to sort by area).
MAX_SHAPES = 1000


def load_reasonseg_json(path: Path) -> dict[str, Any]:
    """The annotation dict of one image, validated (ValueError naming the file)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from exc
    data: Any = None
    for encoding in ("utf-8", "cp1252"):
        try:
            data = json.loads(raw.decode(encoding))
            break
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem = exc
    else:
        raise ValueError(f"{path}: not JSON in UTF-8 or Windows-1252 ({problem})")
    if not isinstance(data, dict) or "text" not in data or "shapes" not in data:
        raise ValueError(f"{path}: expected a JSON object with 'text' and 'shapes'")
    texts = [data["text"]] if isinstance(data["text"], str) else data["text"]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError(f"{path}: 'text' must be a non-empty list of non-empty strings")
    if not isinstance(data["shapes"], list) or len(data["shapes"]) > MAX_SHAPES:
        raise ValueError(f"{path}: 'shapes' must be a list of at most {MAX_SHAPES} polygons")
    for i, shape in enumerate(data["shapes"]):
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str) or "points" not in shape:
            raise ValueError(f"{path}: shapes[{i}] must be an object with a string 'label' and 'points'")
    return {"text": [" ".join(t.split()) for t in texts], "is_sentence": bool(data.get("is_sentence", False)),
            "shapes": data["shapes"]}


def _points(shape: dict, height: int, width: int, where: str) -> np.ndarray:
    try:
        pts = np.asarray(shape["points"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: 'points' must be a list of [x, y] pairs") from exc
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 1:
        raise ValueError(f"{where}: 'points' must be a list of [x, y] pairs, got shape {pts.shape}")
    limit = 8.0 * max(height, width) + 64.0  # far-off vertices are an error, not a cost
    if not np.isfinite(pts).all() or np.abs(pts).max() > limit:
        raise ValueError(f"{where}: points must be finite and within +-{limit:g} of a {height} x {width} image")
    return pts.astype(np.int32)  # truncation, as the dataset's masks were drawn


def shapes_to_label(shapes: list[dict], height: int, width: int, where: str = "shapes") -> np.ndarray:
    """H x W uint8 label map: 0 background, 1 target, 255 ignore (see the module docstring)."""
    drawn = []
    for i, shape in enumerate(shapes):
        label = shape["label"].strip().lower()
        if label == "flag":
            continue
        pts = _points(shape, height, width, f"{where}[{i}]")
        one = np.zeros((height, width), dtype=np.uint8)
        cv2.fillPoly(one, [pts], 1)
        cv2.polylines(one, [pts], True, 1, 1)
        drawn.append((int(one.sum()), i, pts, IGNORE if "ignore" in label else TARGET))
    label_map = np.zeros((height, width), dtype=np.uint8)
    for _, _, pts, value in sorted(drawn, key=lambda d: (-d[0], -d[1])):
        cv2.fillPoly(label_map, [pts], value)
        cv2.polylines(label_map, [pts], True, value, 1)
    return label_map


class ReasonSegDataset:
    """ReasonSeg text samples of one split (see the module docstring).

    Args:
        root: the ReasonSeg folder (holding ``train``, ``val``, ``test``), or
            a folder of .jpg/.json pairs itself with ``split=None``.
        split: ``"train"``, ``"val"``, ``"test"`` or None.
        queries: ``"first"`` (one sample per image) or ``"all"``.
    """

    def __init__(self, root: str | Path, split: str | None = "val", queries: str = "first",
                 seg_token: str = SEG_TOKEN) -> None:
        if queries not in QUERY_CHOICES:
            raise ValueError(f"queries must be one of {QUERY_CHOICES}, got {queries!r}")
        folder = Path(root) if split is None else Path(root) / split
        require_dir(folder, "ReasonSeg .jpg images with their .json annotations")
        self.annotations = sorted(folder.glob("*.json"))
        if not self.annotations:
            raise ValueError(f"{folder}: no .json annotations found")
        self.images = [p.with_suffix(".jpg") for p in self.annotations]
        for image in self.images:
            if not image.is_file():
                raise ValueError(f"{image}: missing image for annotation {image.stem}.json")
        self.seg_token = seg_token
        self.items: list[tuple[int, int]] = []
        for i, path in enumerate(self.annotations):
            count = 1 if queries == "first" else len(load_reasonseg_json(path)["text"])
            self.items.extend((i, k) for k in range(count))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        index, k = self.items[i]
        path = self.annotations[index]
        data = load_reasonseg_json(path)
        if k >= len(data["text"]):
            raise ValueError(f"{path}: query {k} asked, the file holds {len(data['text'])} (it changed on disk?)")
        image = load_rgb(self.images[index])
        labels = shapes_to_label(data["shapes"], image.shape[0], image.shape[1], f"{path}: shapes")
        target, ignore = labels == TARGET, labels == IGNORE
        return Sample(image=image, task="text", query=data["text"][k], description=None,
                      answer=MS3_ANSWER_TEMPLATE.format(seg_token=self.seg_token),
                      masks=[target] if target.any() else [],
                      metadata={"source": "reasonseg", "file": self.images[index].name, "query_index": k,
                                "is_sentence": data["is_sentence"], "ignore_mask": ignore if ignore.any() else None})
