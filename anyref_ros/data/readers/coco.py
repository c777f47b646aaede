"""COCO instances (``instances_*.json``): category segmentation and exemplar
references.

* :class:`CocoIndex` parses an instances file (also used by the RefCOCO reader).
* :class:`CocoSegmentation`: one "text" sample per (image, category) present;
  query and answer name the category; ``masks`` holds each instance.
* :class:`CocoExemplars`: the same (image, category) pairs as "exemplar"
  samples; the exemplar is an instance of that category from another image,
  cropped to its box (trimmed by 1 px per side) and, by default, masked to a
  black background, as in AnyRef's COCO-20i evaluation.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..masks import segmentation_to_mask, xywh_to_box
from ..sample import SEG_TOKEN, Sample, format_answer
from ._io import load_json_object, load_rgb


class CocoIndex:
    """The images, annotations and categories of a COCO instances JSON file.

    Raises ValueError naming the file when the top-level keys or the fields an
    entry needs (image: id, file_name, height, width; annotation: id,
    image_id, category_id, segmentation, bbox; category: id, name) are missing.
    """

    def __init__(self, annotation_file: str | Path) -> None:
        self.path = Path(annotation_file)
        data = load_json_object(self.path, ("images", "annotations", "categories"))
        self.images = self._by_id(data["images"], "images", ("id", "file_name", "height", "width"))
        self.annotations = self._by_id(
            data["annotations"], "annotations", ("id", "image_id", "category_id", "segmentation", "bbox"))
        self.categories = {c["id"]: c for c in self._by_id(
            data["categories"], "categories", ("id", "name")).values()}
        self.by_image: dict[Any, list[dict]] = defaultdict(list)
        for ann in self.annotations.values():
            if ann["image_id"] not in self.images or ann["category_id"] not in self.categories:
                raise ValueError(f"{self.path}: annotation {ann['id']} refers to a missing image or category")
            self.by_image[ann["image_id"]].append(ann)

    def _by_id(self, entries: Any, key: str, fields: tuple[str, ...]) -> dict[Any, dict]:
        if not isinstance(entries, list):
            raise ValueError(f"{self.path}: '{key}' must be a list")
        out = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or any(f not in entry for f in fields):
                raise ValueError(f"{self.path}: {key}[{i}] must be an object with fields {list(fields)}")
            out[entry["id"]] = entry
        return out

    def category_name(self, category_id: Any) -> str:
        return str(self.categories[category_id]["name"])

    def image(self, image_root: Path, image_id: Any) -> np.ndarray:
        """RGB array of ``image_id`` read from ``image_root / file_name``."""
        return load_rgb(Path(image_root) / self.images[image_id]["file_name"])

    def mask(self, ann: dict) -> np.ndarray:
        """H x W bool mask of annotation ``ann`` (polygons or RLE)."""
        img = self.images[ann["image_id"]]
        try:
            return segmentation_to_mask(ann["segmentation"], int(img["height"]), int(img["width"]))
        except ValueError as exc:
            raise ValueError(f"{self.path}: annotation {ann['id']}: {exc}") from exc

    def box(self, ann: dict) -> tuple[int, int, int, int]:
        """Inclusive pixel box of ``ann``'s ``bbox``."""
        img = self.images[ann["image_id"]]
        return xywh_to_box(ann["bbox"], int(img["height"]), int(img["width"]))

    def image_categories(self, include_crowd: bool = False) -> list[tuple[Any, Any]]:
        """Sorted (image_id, category_id) pairs with at least one instance."""
        pairs = {(a["image_id"], a["category_id"]) for a in self.annotations.values()
                 if include_crowd or not a.get("iscrowd", 0)}
        return sorted(pairs)

    def instances(self, image_id: Any, category_id: Any, include_crowd: bool = False) -> list[dict]:
        return [a for a in self.by_image[image_id]
                if a["category_id"] == category_id and (include_crowd or not a.get("iscrowd", 0))]


def crop_exemplar(
    image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], apply_mask: bool = True, trim: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``image`` and ``mask`` to ``box`` (inclusive), trimmed by ``trim``
    pixels per side when the box is large enough; with ``apply_mask`` the
    pixels outside the mask become black. Returns (crop, crop_mask)."""
    x0, y0, x1, y1 = box
    if x1 - x0 + 1 > 2 * trim + 1 and y1 - y0 + 1 > 2 * trim + 1:
        x0, y0, x1, y1 = x0 + trim, y0 + trim, x1 - trim, y1 - trim
    crop = image[y0:y1 + 1, x0:x1 + 1].copy()
    crop_mask = mask[y0:y1 + 1, x0:x1 + 1].copy()
    if apply_mask:
        crop[~crop_mask] = 0
    return crop, crop_mask


class CocoSegmentation:
    """Category segmentation samples: item i is the i-th (image, category) pair
    of :meth:`CocoIndex.image_categories`; images load lazily from ``image_root``."""

    def __init__(self, annotation_file: str | Path, image_root: str | Path, include_crowd: bool = False,
                 seg_token: str = SEG_TOKEN) -> None:
        self.coco = CocoIndex(annotation_file)
        self.image_root = Path(image_root)
        self.include_crowd = include_crowd
        self.seg_token = seg_token
        self.pairs = self.coco.image_categories(include_crowd)

    def __len__(self) -> int:
        return len(self.pairs)

    def _target(self, i: int) -> tuple[np.ndarray, list[dict], list[np.ndarray], str, dict]:
        image_id, cat_id = self.pairs[i]
        anns = self.coco.instances(image_id, cat_id, self.include_crowd)
        name = self.coco.category_name(cat_id)
        meta = {"source": "coco", "image_id": image_id, "category_id": cat_id,
                "ann_ids": [a["id"] for a in anns], "file_name": self.coco.images[image_id]["file_name"]}
        return self.coco.image(self.image_root, image_id), anns, [self.coco.mask(a) for a in anns], name, meta

    def __getitem__(self, i: int) -> Sample:
        image, _, masks, name, meta = self._target(i)
        return Sample(image=image, task="text", query=name, description=name,
                      answer=format_answer(name, self.seg_token), masks=masks, metadata=meta)


class CocoExemplars(CocoSegmentation):
    """Exemplar samples: the pairs of :class:`CocoSegmentation` whose category
    occurs in at least two images; the exemplar instance (from another image)
    is drawn with ``numpy.random.default_rng([seed, i])``."""

    def __init__(self, annotation_file: str | Path, image_root: str | Path, seed: int = 0,
                 apply_mask: bool = True, include_crowd: bool = False, seg_token: str = SEG_TOKEN) -> None:
        super().__init__(annotation_file, image_root, include_crowd, seg_token)
        self.seed = seed
        self.apply_mask = apply_mask
        self.by_category: dict[Any, list[dict]] = defaultdict(list)
        for ann in sorted(self.coco.annotations.values(), key=lambda a: a["id"]):
            if include_crowd or not ann.get("iscrowd", 0):
                self.by_category[ann["category_id"]].append(ann)
        self.pairs = [(img, cat) for img, cat in self.pairs
                      if any(a["image_id"] != img for a in self.by_category[cat])]

    def __getitem__(self, i: int) -> Sample:
        image, _, masks, name, meta = self._target(i)
        image_id, cat_id = self.pairs[i]
        choices = [a for a in self.by_category[cat_id] if a["image_id"] != image_id]
        ref = choices[int(np.random.default_rng([self.seed, i]).integers(len(choices)))]
        ref_image = self.coco.image(self.image_root, ref["image_id"])
        crop, crop_mask = crop_exemplar(ref_image, self.coco.mask(ref), self.coco.box(ref), self.apply_mask)
        meta["exemplar_ann_id"] = ref["id"]
        return Sample(image=image, task="exemplar", exemplar=crop, exemplar_mask=crop_mask, description=name,
                      answer=format_answer(name, self.seg_token), masks=masks, metadata=meta)
