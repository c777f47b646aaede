"""gRefCOCO (generalised referring expressions: Liu, Ding and Jiang, GRES,
CVPR 2023) in its release layout.

A dataset folder (e.g. ``grefcoco``) holds ``grefs(<split_by>).json`` (or the
same list pickled as ``grefs(<split_by>).p``) and ``instances.json`` (COCO
format, images from COCO ``train2014``). Each ref is a dict with

* ``ref_id``, ``image_id``, ``split`` (``train``, ``val``, ``testA``, ``testB``);
* ``ann_id``: a *list* of annotation ids, the expression's targets (one, several,
  or ``[-1]`` when it names nothing in the image);
* ``no_target``: true for an expression without a target;
* ``sentences``: a list of dicts with ``sent`` (also ``sent_id``, ``tokens``);
* ``category_id``: a list (or one id), not used here.

Samples (one per ref and sentence, or one per ref with ``sentences="first"``
/ ``"last"``) are task "text": the sentence is the query; ``masks`` holds
each target's mask (crowd annotations are left out, as gRefCOCO's own loader
does). A no-target expression has no masks, ``metadata["absent"] = True``,
no description, and the model's no-object reply as its answer (``absent_answer``,
no ``[SEG]``), like the toy world's absent-object queries. ``metadata["gres"]``
marks the samples whose scores ``anyref-eval`` reports as gIoU, cIoU, N-acc and
T-acc (:class:`~anyref_ros.scoring.metrics.GeneralisedReferringAccumulator`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..sample import SEG_TOKEN, Sample, format_answer
from ..toy import NO_OBJECT_ANSWER
from .coco import CocoIndex
from .refer import check_refs, load_plain_pickle, refs_of_split, sentence_items, sentence_of

NO_TARGET_ANN_ID = -1


def load_grefs(dataset_dir: Path, split_by: str) -> tuple[Path, list[dict]]:
    """The refs list of ``grefs(<split_by>).json`` (or ``.p``), validated;
    returns (file, refs). ValueError naming the file on any problem."""
    json_path, pickle_path = dataset_dir / f"grefs({split_by}).json", dataset_dir / f"grefs({split_by}).p"
    if json_path.is_file():
        path = json_path
        try:
            refs = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{json_path}: cannot read JSON ({exc})") from exc
    elif pickle_path.is_file():
        path, refs = pickle_path, load_plain_pickle(pickle_path)
    else:
        raise ValueError(f"{dataset_dir}: found neither {json_path.name} nor {pickle_path.name}")
    return path, check_refs(refs, path)


def target_ann_ids(ref: dict[str, Any], path: Path) -> list[Any]:
    """The ref's target annotation ids (empty for a no-target expression);
    ValueError when ``no_target`` and ``ann_id`` disagree."""
    ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
    ids = [a for a in ids if a != NO_TARGET_ANN_ID]
    if bool(ref.get("no_target", False)) and ids:
        raise ValueError(f"{path}: ref {ref['ref_id']} is marked no_target but lists annotations {ids}")
    return ids


class GRefCocoDataset:
    """gRefCOCO text samples of one split (see the module docstring).

    Args:
        dataset_dir: folder with ``grefs(<split_by>).json`` and ``instances.json``.
        image_root: folder of the COCO ``train2014`` images.
        split: ``train``, ``val``, ``testA`` or ``testB``.
        split_by: the refs file variant (``unc``).
        sentences: ``"all"``, ``"first"`` or ``"last"`` sentence per ref.
        absent_answer: the answer of a no-target expression (no ``seg_token``).
    """

    def __init__(self, dataset_dir: str | Path, image_root: str | Path, split: str, split_by: str = "unc",
                 sentences: str = "all", absent_answer: str = NO_OBJECT_ANSWER, seg_token: str = SEG_TOKEN) -> None:
        if not isinstance(absent_answer, str) or not absent_answer.strip() or seg_token in absent_answer:
            raise ValueError(f"absent_answer must be a non-empty reply without {seg_token}, got {absent_answer!r}")
        dataset_dir = Path(dataset_dir)
        self.refs_path, all_refs = load_grefs(dataset_dir, split_by)
        self.coco = CocoIndex(dataset_dir / "instances.json")
        self.image_root = Path(image_root)
        self.split, self.absent_answer, self.seg_token = split, absent_answer, seg_token
        self.refs = refs_of_split(all_refs, split, self.refs_path)
        self.targets: dict[Any, list[Any]] = {}
        for r in self.refs:
            ids = target_ann_ids(r, self.refs_path)
            if r["image_id"] not in self.coco.images:
                raise ValueError(f"{self.refs_path}: ref {r['ref_id']} points to image {r['image_id']}, "
                                 f"missing from {self.coco.path}")
            for a in ids:
                ann = self.coco.annotations.get(a)
                if ann is None or ann["image_id"] != r["image_id"]:
                    raise ValueError(f"{self.refs_path}: ref {r['ref_id']} points to annotation {a}, missing from "
                                     f"{self.coco.path} or of another image")
            self.targets[r["ref_id"]] = ids
        self.items = sentence_items(self.refs, sentences)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def no_target_count(self) -> int:
        """How many items are no-target expressions."""
        return sum(not self.targets[r["ref_id"]] for r, _ in self.items)

    def __getitem__(self, i: int) -> Sample:
        ref, k = self.items[i]
        sentence = sentence_of(ref, k)
        ids = self.targets[ref["ref_id"]]
        anns = [self.coco.annotations[a] for a in ids if not self.coco.annotations[a].get("iscrowd", 0)]
        img = self.coco.images[ref["image_id"]]
        image = self.coco.image(self.image_root, ref["image_id"])
        meta = {"source": "grefcoco", "gres": True, "ref_id": ref["ref_id"], "ann_ids": [a["id"] for a in anns],
                "image_id": ref["image_id"], "sentence_index": k, "file_name": img["file_name"],
                "no_target": not ids}
        if not ids:
            meta.update(absent=True)
            return Sample(image=image, task="text", query=sentence, description=None, answer=self.absent_answer,
                          masks=[], metadata=meta)
        return Sample(image=image, task="text", query=sentence, description=sentence,
                      answer=format_answer(sentence, self.seg_token), masks=[self.coco.mask(a) for a in anns],
                      metadata=meta)
