"""Run an ``AnyRefPipeline`` over ``Sample`` objects and score it per task.

``predict(pipe, sample)`` issues the query a user of the node would issue:

* text: ``segment(image, text=query)`` (forced answer);
* exemplar: ``segment(image, exemplar=..., exemplar_mask=...)`` (greedy: the
  model names the referent, then segments);
* audio: ``segment(image, audio=..., sample_rate=...)`` (greedy);
* region: ``describe(image, box)`` (greedy; the sample's inclusive box is
  converted to the pipeline's exclusive one).

``TaskScores`` accumulates, per task, referring cIoU/gIoU, AVS mIoU/F
(audio; consecutive frames with the same ``metadata["video"]`` form one
video, any other sample is a one-frame video; the pipeline returns binary
masks, so the F sweep reduces to the F-score at 0.5) and the answer's exact
match with the sample's description (greedy tasks); region descriptions
also get CIDEr-D (``CIDEr-D_backend`` says whose) and METEOR (Java needed;
else ``METEOR_note`` says why it was skipped). Pixels in
``metadata["ignore_mask"]`` (ReasonSeg) count in no IoU. gRefCOCO samples
(``metadata["gres"]``) are scored as gRefCOCO reports them: gIoU, cIoU,
N-acc and T-acc (:class:`~.metrics.GeneralisedReferringAccumulator`, a
sample answered not found counting as an empty mask).

Every task also gets ``target_accuracy`` (present referents found: the
pipeline's ``Referral.found``), ``no_target_accuracy`` (absent referents,
``metadata["absent"]``, answered not found) and ``score_spearman`` (Spearman
correlation of ``Referral.score`` with the real IoU over found present
referents); ``evaluate`` pools them over all tasks in ``overall``.  Samples
are grouped by ``metadata["eval_group"]`` when set (e.g. "text_absent",
"audio_offset"), else by task; a sound with ``metadata["sound"]`` (windowed
clips) adds the name's exact match per lead-in range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

import numpy as np

from ..data.sample import Sample
from .metrics import AVSAccumulator, FoundAccumulator, GeneralisedReferringAccumulator, ReferringAccumulator
from .text_metrics import MetricUnavailable, cider_backend, cider_d, exact_match, meteor

GREEDY_TASKS = ("exemplar", "audio", "region")


@dataclass
class GridRow:
    """One row: ``image`` H x W x 3 uint8, ``gt_mask`` and ``pred_mask``
    H x W bool (either may be None: its tile shows the plain image) and a
    free ``caption`` (e.g. ``"red circle | IoU 0.83"``)."""

    image: np.ndarray
    gt_mask: np.ndarray | None
    pred_mask: np.ndarray | None
    caption: str = ""


def caption_for(query: str, iou: float | None = None, answer: str | None = None) -> str:
    """``"query | answer | IoU 0.83"`` (parts left out when None)."""
    parts = [query]
    if answer is not None:
        parts.append(answer)
    if iou is not None:
        parts.append(f"IoU {iou:.2f}")
    return " | ".join(parts)


def inclusive_to_exclusive(box):
    x0, y0, x1, y1 = box
    return (x0, y0, x1 + 1, y1 + 1)


#: Lead-in ranges (s) of windowed sound clips reported separately.
LEAD_IN_BINS = ((-1.0, 0.0), (0.0, 0.1), (0.1, 0.3), (0.3, 0.6))


@dataclass
class Prediction:
    mask: np.ndarray
    text: str
    answer: str
    found: bool = True
    score: float = 0.0


def predict(pipe, sample: Sample) -> Prediction:
    """The pipeline's answer to ``sample`` (see the module docstring)."""
    if sample.task == "text":
        r = pipe.segment(sample.image, text=sample.query)
    elif sample.task == "exemplar":
        r = pipe.segment(sample.image, exemplar=sample.exemplar, exemplar_mask=sample.exemplar_mask)
    elif sample.task == "audio":
        r = pipe.segment(sample.image, audio=sample.audio, sample_rate=sample.sample_rate)
    elif sample.task == "region":
        r = pipe.describe(sample.image, inclusive_to_exclusive(sample.box))
    else:
        raise ValueError(f"unknown task {sample.task!r}")
    return Prediction(mask=r.mask, text=r.text, answer=r.answer,
                      found=bool(getattr(r, "found", r.mask.any())), score=float(getattr(r, "score", 0.0)))


@dataclass
class TaskScores:
    """Accumulated scores of one task."""

    referring: ReferringAccumulator = field(default_factory=ReferringAccumulator)
    avs: AVSAccumulator = field(default_factory=AVSAccumulator)
    texts: List[str] = field(default_factory=list)
    references: List[str] = field(default_factory=list)
    video: Optional[object] = None  # AVSBench video whose frames are being collected
    frames: List[tuple] = field(default_factory=list)
    found: FoundAccumulator = field(default_factory=FoundAccumulator)
    lead_ins: List[tuple] = field(default_factory=list)  # (onset s, name right) of windowed sounds
    gres: GeneralisedReferringAccumulator = field(default_factory=GeneralisedReferringAccumulator)

    def add(self, task: str, sample: Sample, pred: Prediction) -> float:
        gt = sample.mask
        score = self.referring.add(pred.mask, gt, sample.metadata.get("ignore_mask"))
        if sample.metadata.get("gres"):
            score = self.gres.add(pred.mask, gt, predicted_empty=not pred.found)
        absent = bool(sample.metadata.get("absent")) or not gt.any()
        self.found.add(pred.found, not absent, pred.score, score)
        sound = sample.metadata.get("sound")
        if sound is not None and sample.description is not None:
            self.lead_ins.append((float(sound["onset"]),
                                  exact_match([pred.text], [sample.description]) == 1.0))
        if task == "audio":  # frames of one video (metadata "video") are scored together
            video = sample.metadata.get("video", object())
            if video != self.video:
                self.flush()
                self.video = video
            self.frames.append((pred.mask.astype(np.float64), gt))
        if task in GREEDY_TASKS and sample.description is not None:
            self.texts.append(pred.text)
            self.references.append(sample.description)
        return score

    def flush(self) -> None:
        if self.frames:
            self.avs.add_video(np.stack([p for p, _ in self.frames]), np.stack([g for _, g in self.frames]))
        self.frames, self.video = [], None

    def summary(self, task: str, text_metrics: bool = True) -> Dict[str, object]:
        self.flush()
        out: Dict[str, object] = dict(self.referring.summary())
        if task == "audio":
            avs = self.avs.summary()
            out.update(mIoU=avs["mIoU"], F=avs["F"])
        out.update(self.found.summary())
        if self.gres.count:
            gres = self.gres.summary()
            out.update({k: gres[k] for k in ("gIoU", "cIoU", "N-acc", "T-acc")})
        if self.lead_ins:
            by_lead_in = {}
            for lo, hi in LEAD_IN_BINS:
                right = [r for onset, r in self.lead_ins if lo <= onset < hi]
                if right:
                    key = "late start" if hi <= 0 else f"{lo:.1f}-{hi:.1f}s"
                    by_lead_in[key] = {"exact_match": float(np.mean(right)), "count": len(right)}
            out["exact_match_by_lead_in"] = by_lead_in
        if self.texts:
            out["exact_match"] = exact_match(self.texts, self.references)
            if task == "region" and text_metrics:
                out["CIDEr-D"] = cider_d(self.texts, [[r] for r in self.references])[0]
                out["CIDEr-D_backend"] = cider_backend()
                try:
                    out["METEOR"] = meteor(self.texts, [[r] for r in self.references])[0]
                except MetricUnavailable as exc:
                    out["METEOR"] = None
                    out["METEOR_note"] = str(exc)
        return out


def evaluate(pipe, samples: Iterable[Sample], grid_per_task: int = 0,
             text_metrics: bool = True, progress: Optional[object] = None) -> Dict[str, object]:
    """Scores per task (``{"tasks": {task: {...}}, "grid": [GridRow, ...]}``);
    the first ``grid_per_task`` samples of each task become grid rows."""
    scores: Dict[str, TaskScores] = {}
    kinds: Dict[str, str] = {}
    rows: Dict[str, List[GridRow]] = {}
    overall = FoundAccumulator()
    for sample in samples:
        pred = predict(pipe, sample)
        group = sample.metadata.get("eval_group", sample.task)
        kinds[group] = sample.task
        iou = scores.setdefault(group, TaskScores()).add(sample.task, sample, pred)
        overall.add(pred.found, not (sample.metadata.get("absent") or not sample.mask.any()),
                    pred.score, iou)
        task = group
        if len(rows.setdefault(task, [])) < grid_per_task:
            query = sample.query or f"{task}: {sample.description}"
            shown = pred.text if sample.task in GREEDY_TASKS or not pred.found else None
            rows[task].append(GridRow(sample.image, sample.mask, pred.mask, caption_for(query, iou, shown)))
        if progress is not None:
            progress.update(1)
    tasks = {t: s.summary(kinds[t], text_metrics) for t, s in sorted(scores.items())}
    return {"tasks": tasks, "overall": overall.summary(),
            "grid": [r for t in sorted(rows) for r in rows[t]]}
