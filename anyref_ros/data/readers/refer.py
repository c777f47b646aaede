"""RefCOCO / RefCOCO+ / RefCOCOg / RefCLEF in the ``refer`` layout.

A dataset folder (e.g. ``refer_seg/refcoco``) holds ``refs(<split_by>).p``
(split_by: ``unc``, ``google``, ``umd``, ``berkeley``) and ``instances.json``
(COCO format). The pickle is a list of dicts with at least ``ref_id``,
``ann_id``, ``image_id``, ``split`` and ``sentences`` (a list of dicts with
``sent``). Images are read from ``image_root / file_name`` (e.g. COCO
``train2014``).

Samples (one per ref and sentence, or one per ref with ``sentences="last"``,
as AnyRef's evaluation does):

* task "text": the sentence is the query; answer ``"{sentence}[SEG]."``;
* task "region" (referring-expression generation): the annotation's box is
  the reference; answer ``"{sentence}[SEG]."`` (or ``"{sentence}."`` with
  ``reg_with_mask=False``).

Both carry the referent's mask.
"""

from __future__ import annotations

from pathlib import Path

from ..sample import SEG_TOKEN, Sample, format_answer
from ._io import load_pickle
from .coco import CocoIndex

SENTENCE_CHOICES = ("all", "first", "last")
_REF_FIELDS = ("ref_id", "ann_id", "image_id", "split", "sentences")


def load_refs(path: Path) -> list[dict]:
    """The refs list of a ``refs(...).p`` file, validated (ValueError naming the file)."""
    refs = load_pickle(path)
    if not isinstance(refs, list):
        raise ValueError(f"{path}: expected a pickled list of refs, got {type(refs).__name__}")
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict) or any(k not in ref for k in _REF_FIELDS):
            raise ValueError(f"{path}: ref {i} must be a dict with keys {list(_REF_FIELDS)}")
        if not ref["sentences"] or any(not isinstance(s, dict) or "sent" not in s for s in ref["sentences"]):
            raise ValueError(f"{path}: ref {ref['ref_id']} needs a non-empty 'sentences' list of dicts with 'sent'")
    return refs


class ReferDataset:
    """Referring samples of one split.

    Args:
        dataset_dir: folder with ``refs(<split_by>).p`` and ``instances.json``.
        image_root: folder of the COCO (or CLEF) images.
        split: e.g. ``train``, ``val``, ``testA``, ``testB``, ``test``.
        split_by: the refs file variant (``unc``, ``google``, ``umd``, ...).
        task: ``"text"`` (segmentation) or ``"region"`` (description).
        sentences: ``"all"``, ``"first"`` or ``"last"`` sentence per ref.
    """

    def __init__(self, dataset_dir: str | Path, image_root: str | Path, split: str, split_by: str = "unc",
                 task: str = "text", sentences: str = "all", reg_with_mask: bool = True,
                 seg_token: str = SEG_TOKEN) -> None:
        if task not in ("text", "region"):
            raise ValueError(f"task must be 'text' or 'region', got {task!r}")
        if sentences not in SENTENCE_CHOICES:
            raise ValueError(f"sentences must be one of {SENTENCE_CHOICES}, got {sentences!r}")
        dataset_dir = Path(dataset_dir)
        refs_path = dataset_dir / f"refs({split_by}).p"
        all_refs = load_refs(refs_path)
        self.coco = CocoIndex(dataset_dir / "instances.json")
        self.image_root = Path(image_root)
        self.task, self.split, self.reg_with_mask, self.seg_token = task, split, reg_with_mask, seg_token
        self.refs = [r for r in all_refs if r["split"] == split]
        if not self.refs:
            found = sorted({str(r["split"]) for r in all_refs})
            raise ValueError(f"{refs_path}: no refs in split {split!r}; splits present: {found}")
        for r in self.refs:
            if r["ann_id"] not in self.coco.annotations:
                raise ValueError(f"{refs_path}: ref {r['ref_id']} points to annotation {r['ann_id']}, "
                                 f"missing from {self.coco.path}")
        self.items: list[tuple[dict, int]] = []
        for r in self.refs:
            n = len(r["sentences"])
            picks = {"all": range(n), "first": [0], "last": [n - 1]}[sentences]
            self.items.extend((r, k) for k in picks)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        ref, k = self.items[i]
        sentence = " ".join(str(ref["sentences"][k]["sent"]).split())
        ann = self.coco.annotations[ref["ann_id"]]
        img = self.coco.images[ref["image_id"]]
        image = self.coco.image(self.image_root, ref["image_id"])
        meta = {"source": "refer", "ref_id": ref["ref_id"], "ann_id": ref["ann_id"], "image_id": ref["image_id"],
                "sentence_index": k, "file_name": img["file_name"],
                "category": self.coco.category_name(ann["category_id"])}
        masks = [self.coco.mask(ann)]
        if self.task == "text":
            return Sample(image=image, task="text", query=sentence, description=sentence,
                          answer=format_answer(sentence, self.seg_token), masks=masks, metadata=meta)
        return Sample(image=image, task="region", box=self.coco.box(ann), description=sentence,
                      answer=format_answer(sentence, self.seg_token, with_mask=self.reg_with_mask),
                      masks=masks, metadata=meta)
