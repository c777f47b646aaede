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

The refs pickle is read with :class:`RefsUnpickler`, which builds plain
containers and scalars only: a pickle that asks for any class or function
(other than ``set``/``frozenset``) is refused, so a tampered file cannot run
code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ..sample import SEG_TOKEN, Sample, format_answer
from .coco import CocoIndex

SENTENCE_CHOICES = ("all", "first", "last")
_REF_FIELDS = ("ref_id", "ann_id", "image_id", "split", "sentences")


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What ``_codecs.encode`` does in pickles of ``bytes`` written with
    protocol <= 2 by Python 3, and nothing more."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refused: _codecs.encode is admitted only for latin1 bytes")
    return text.encode("latin1")


class RefsUnpickler(pickle.Unpickler):
    """An unpickler for data files made of lists, dicts, tuples, strings,
    bytes, numbers, booleans and None. Those are built by pickle opcodes and
    never reach :meth:`find_class`; the only globals admitted are ``set``
    and ``frozenset`` (how protocols <= 3 write sets) and ``_codecs.encode``
    restricted to latin1 (how protocols <= 2 write bytes). Anything else --
    ``os.system``, ``builtins.eval``, a class to instantiate -- raises
    ``pickle.UnpicklingError`` before it is looked up."""

    ALLOWED = {("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
               ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset,
               ("_codecs", "encode"): _latin1_bytes}

    def find_class(self, module: str, name: str) -> Any:
        allowed = self.ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        raise pickle.UnpicklingError(
            f"refused to load {module}.{name}: a refs file holds only lists, dicts, strings and "
            "numbers, and this pickle asks to import code (it is not a refer-format refs file, or it "
            "was tampered with); use the original refs(<split_by>).p of the dataset")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused: persistent ids are not allowed in a refs file")


def load_plain_pickle(path: Path) -> Any:
    """Load a pickle of plain data (written by Python 2 or 3) with
    :class:`RefsUnpickler`; ValueError naming the file on any failure,
    including a refused global. Python 2 ``str`` is read as UTF-8, or as
    Latin-1 when it is not valid UTF-8."""
    last: Exception = ValueError("unreadable")
    for encoding in ("utf-8", "latin1"):
        try:
            with open(path, "rb") as f:
                return RefsUnpickler(f, encoding=encoding).load()
        except UnicodeDecodeError as exc:
            last = exc
            continue
        except Exception as exc:  # noqa: BLE001 - any failure names the file
            raise ValueError(f"{path}: cannot read pickle ({type(exc).__name__}: {exc})") from None
    raise ValueError(f"{path}: cannot read pickle ({last})")


def check_refs(refs: Any, path: Path) -> list[dict]:
    """``refs`` if it is a list of refs, each with ``ref_id``, ``ann_id``,
    ``image_id``, ``split`` and a non-empty ``sentences`` list of dicts with
    ``sent`` (ValueError naming ``path`` otherwise)."""
    if not isinstance(refs, list):
        raise ValueError(f"{path}: expected a list of refs, got {type(refs).__name__}")
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict) or any(k not in ref for k in _REF_FIELDS):
            raise ValueError(f"{path}: ref {i} must be a dict with keys {list(_REF_FIELDS)}")
        if not ref["sentences"] or any(not isinstance(s, dict) or "sent" not in s for s in ref["sentences"]):
            raise ValueError(f"{path}: ref {ref['ref_id']} needs a non-empty 'sentences' list of dicts with 'sent'")
    return refs


def load_refs(path: Path) -> list[dict]:
    """The refs list of a ``refs(...).p`` file, validated (ValueError naming the file)."""
    return check_refs(load_plain_pickle(path), path)


def refs_of_split(refs: list[dict], split: str, path: Path) -> list[dict]:
    """The refs of ``split``; ValueError listing the splits present when there are none."""
    chosen = [r for r in refs if r["split"] == split]
    if not chosen:
        found = sorted({str(r["split"]) for r in refs})
        raise ValueError(f"{path}: no refs in split {split!r}; splits present: {found}")
    return chosen


def sentence_items(refs: list[dict], sentences: str) -> list[tuple[dict, int]]:
    """(ref, sentence index) pairs: every sentence, or the first or last of each ref."""
    if sentences not in SENTENCE_CHOICES:
        raise ValueError(f"sentences must be one of {SENTENCE_CHOICES}, got {sentences!r}")
    items: list[tuple[dict, int]] = []
    for r in refs:
        n = len(r["sentences"])
        items.extend((r, k) for k in {"all": range(n), "first": [0], "last": [n - 1]}[sentences])
    return items


def sentence_of(ref: dict, k: int) -> str:
    """Sentence ``k`` of ``ref`` with its whitespace collapsed."""
    return " ".join(str(ref["sentences"][k]["sent"]).split())


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
        self.refs = refs_of_split(all_refs, split, refs_path)
        for r in self.refs:
            if r["ann_id"] not in self.coco.annotations:
                raise ValueError(f"{refs_path}: ref {r['ref_id']} points to annotation {r['ann_id']}, "
                                 f"missing from {self.coco.path}")
        self.items = sentence_items(self.refs, sentences)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        ref, k = self.items[i]
        sentence = sentence_of(ref, k)
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
