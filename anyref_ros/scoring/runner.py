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

Sounds heard by a microphone array (``metadata["array"]``, the toy world's
:mod:`~anyref_ros.data.toy_direction` scenes) are answered as the node
answers a sound event with ``mic_positions`` set: the mono mix goes to the
model, the array's clip to :func:`~anyref_ros.audio.direction.estimate_direction`,
and :func:`~anyref_ros.spatial.sound_source.choose_source` joins the two
(re-asking the model on a crop when needed). Their groups also report
``direction_error_median_deg`` (the estimate against the true direction, up
to what the array cannot resolve), ``right_object`` (share of in-view scenes
whose answer has IoU >= 0.6 with the sounding object), the same share for
the model's mask alone (``right_object_without_direction``),
``out_of_view_reported`` (share of out-of-view scenes answered not found
with the direction set) and ``reasked`` (share of scenes that needed a
second model call).
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


#: IoU at which an answer is the right one of two alike objects.
RIGHT_OBJECT_IOU = 0.6


@dataclass
class Heard:
    """What the direction added to an answer (array-audio samples only)."""

    error_deg: Optional[float]  # None: no direction could be estimated
    raw_mask: np.ndarray  # the model's own mask, before the direction chose
    in_view: bool
    reasked: bool


@dataclass
class Prediction:
    mask: np.ndarray
    text: str
    answer: str
    found: bool = True
    score: float = 0.0
    heard: Optional[Heard] = None


def predict_heard(pipe, sample: Sample) -> Prediction:
    """The answer to a sound heard by an array (see the module docstring)."""
    from ..audio.direction import NoDirection, estimate_direction
    from ..audio.signal import to_mono
    from ..geometry import Intrinsics
    from ..spatial.sound_source import Heard as HeardDirection, choose_source, crop_asker

    array = sample.metadata["array"]
    mono = to_mono(sample.audio)
    r = pipe.segment(sample.image, audio=mono, sample_rate=sample.sample_rate)
    found, score = bool(getattr(r, "found", r.mask.any())), float(getattr(r, "score", 0.0))
    fx, fy, cx, cy, w, h = array["camera"]
    k = Intrinsics(fx, fy, cx, cy, int(w), int(h))
    try:
        direction = estimate_direction(sample.audio, sample.sample_rate, array["mic_positions"], array["onset_s"])
    except NoDirection:
        return Prediction(mask=r.mask, text=r.text, answer=r.answer, found=found, score=score,
                          heard=Heard(None, r.mask, bool(array["in_view"]), False))
    heard = HeardDirection.in_camera(direction, np.asarray(array["audio_to_camera"]))

    ask = crop_asker(sample.image, lambda crop: pipe.segment(crop, audio=mono, sample_rate=sample.sample_rate).mask)
    choice = choose_source(r.mask if found else np.zeros_like(r.mask, dtype=bool), heard, k, ask=ask)
    error = float(heard.direction.angle_deg(np.asarray(array["direction"])))
    return Prediction(mask=choice.mask, text=r.text, answer=r.answer, found=choice.found,
                      score=score if choice.found else 0.0,
                      heard=Heard(error, r.mask, choice.in_view, choice.reasked))


def predict(pipe, sample: Sample) -> Prediction:
    """The pipeline's answer to ``sample`` (see the module docstring)."""
    if "array" in sample.metadata:
        return predict_heard(pipe, sample)
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
    heard: List[tuple] = field(default_factory=list)  # (error deg, right, right without, reported, reasked)

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
        if pred.heard is not None:
            self._add_heard(sample, pred, score)
        if task in GREEDY_TASKS and sample.description is not None:
            self.texts.append(pred.text)
            self.references.append(sample.description)
        return score

    def _add_heard(self, sample: Sample, pred: Prediction, iou: float) -> None:
        gt, h = sample.mask, pred.heard
        present = bool(gt.any())
        raw_iou = float((h.raw_mask & gt).sum() / max(1, (h.raw_mask | gt).sum())) if present else 0.0
        self.heard.append((h.error_deg, present and pred.found and iou >= RIGHT_OBJECT_IOU,
                           present and raw_iou >= RIGHT_OBJECT_IOU,
                           not present and not pred.found and not h.in_view and h.error_deg is not None,
                           h.reasked, present))

    def _heard_summary(self) -> Dict[str, object]:
        errors = [e for e, *_ in self.heard if e is not None]
        present = [row for row in self.heard if row[5]]
        absent = [row for row in self.heard if not row[5]]
        out: Dict[str, object] = {
            "direction_error_median_deg": float(np.median(errors)) if errors else float("nan"),
            "direction_error_p90_deg": float(np.percentile(errors, 90)) if errors else float("nan"),
            "no_direction": len(self.heard) - len(errors),
            "reasked": float(np.mean([row[4] for row in self.heard]))}
        if present:
            out["right_object"] = float(np.mean([row[1] for row in present]))
            out["right_object_without_direction"] = float(np.mean([row[2] for row in present]))
        if absent:
            out["out_of_view_reported"] = float(np.mean([row[3] for row in absent]))
        return out

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
        if self.heard:
            out.update(self._heard_summary())
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
