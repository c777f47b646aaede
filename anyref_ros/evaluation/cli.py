"""``anyref-eval``: score a checkpoint and write JSON + a picture grid.

    anyref-eval --preset toy --checkpoint model/toy --scenes 200
    anyref-eval --checkpoint ckpt --source refer \\
        --source-args '{"dataset_dir": "refcoco", "image_root": "coco/train2014", "split": "val"}'

Toy world (``--source toy``, default): held-out scenes ``0..N-1`` of
``ToyWorld(EVAL_SEED)``, a seed no training run uses, all four tasks in
turn (text, exemplar, audio, region), then (unless ``--no-extra``) the text
scenes again with absent-object queries ("text_absent"), the audio
scenes with detector-window clips ("audio_offset", 0-0.5 s lead-in), and
as many microphone-array scenes of each direction kind
(:mod:`anyref_ros.data.toy_direction`: "direction_alike", two identical
objects of which one sounds; "direction_out_of_view", the sound from
outside the field of view), answered with the sound's direction.
Reported per task: referring cIoU and
gIoU, for audio also AVS mIoU and F, for exemplar/audio/region the exact
match of the generated name/description, for region also CIDEr-D and
METEOR (both by pycocoevalcap; METEOR needs a Java runtime, ``make setup
JAVA=1``, else it is null and ``METEOR_note`` says it was skipped); for
every group target / no-target accuracy (``Referral.found``) and the Spearman correlation of ``Referral.score``
with the real IoU; ``overall`` pools those over all groups.

Dataset readers (``--source refer|grefcoco|reasonseg|coco|coco_exemplar|
ade20k|avsbench``, ``anyref_ros.data.readers.READERS``) take their
constructor arguments as JSON in ``--source-args``; ``--scenes`` caps the
number of samples. gRefCOCO reports gIoU, cIoU, N-acc and T-acc; ReasonSeg
leaves its "ignore" regions out of gIoU and cIoU.

    anyref-eval --checkpoint ckpt --source grefcoco --scenes 0 \\
        --source-args '{"dataset_dir": "grefcoco", "image_root": "coco/train2014", "split": "val"}'
    anyref-eval --checkpoint ckpt --source reasonseg --scenes 0 \\
        --source-args '{"root": "ReasonSeg", "split": "val"}'
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional

TOY_TASK_ORDER = ("text", "exemplar", "audio", "region")


def toy_samples(scenes: int, size=(160, 120), seg_token: str = "[SEG]", extra: bool = True) -> Iterable:
    """Held-out toy samples: scene i of ``ToyWorld(EVAL_SEED)`` with task
    ``TOY_TASK_ORDER[i % 4]`` (each task gets a quarter of the scenes).

    ``extra``: then, for each text scene, the same scene with an
    absent-object query (group "text_absent"), and for each audio scene, the
    same scene with a detector-window clip (``sound_layout="offset"``: room
    noise lead-in of 0-0.5 s, sound of 0.8-2 s; group "audio_offset"), then
    as many microphone-array scenes of each kind of
    :class:`~anyref_ros.data.toy_direction.ToyDirectionWorld` (groups
    "direction_alike" and "direction_out_of_view")."""
    from ..data.toy import EVAL_SEED, ToyWorld

    world = ToyWorld(EVAL_SEED, size=tuple(size), seg_token=seg_token)
    for i in range(scenes):
        yield world.sample(i, TOY_TASK_ORDER[i % len(TOY_TASK_ORDER)])
    if not extra:
        return
    from ..model.prompts import NO_OBJECT_ANSWER

    absent = ToyWorld(EVAL_SEED, size=tuple(size), seg_token=seg_token, absent_answer=NO_OBJECT_ANSWER)
    for i in range(TOY_TASK_ORDER.index("text"), scenes, len(TOY_TASK_ORDER)):
        sample = absent.sample(i, "text", absent=True)
        sample.metadata["eval_group"] = "text_absent"
        yield sample
    windowed = ToyWorld(EVAL_SEED, size=tuple(size), seg_token=seg_token, sound_layout="offset")
    for i in range(TOY_TASK_ORDER.index("audio"), scenes, len(TOY_TASK_ORDER)):
        sample = windowed.sample(i, "audio")
        sample.metadata["eval_group"] = "audio_offset"
        yield sample
    from ..data.toy_direction import KINDS, ToyDirectionWorld

    heard = ToyDirectionWorld(EVAL_SEED, size=tuple(size), seg_token=seg_token)
    for kind in KINDS:  # as many as the audio scenes
        for i in range(_task_count(scenes, "audio")):
            yield heard.sample(i, kind)


def toy_sample_count(scenes: int, extra: bool = True) -> int:
    """How many samples ``toy_samples`` yields."""
    return scenes + (_task_count(scenes, "text") + 3 * _task_count(scenes, "audio") if extra else 0)


def _task_count(scenes: int, task: str) -> int:
    """How many of ``scenes`` held-out scenes have ``task`` (tasks in turn)."""
    return len(range(TOY_TASK_ORDER.index(task), scenes, len(TOY_TASK_ORDER)))


def reader_samples(kind: str, args: Dict, limit: int, seg_token: str) -> Iterable:
    from ..training.data import _reader

    dataset = _reader(kind)(seg_token=seg_token, **args)
    n = len(dataset) if limit <= 0 else min(limit, len(dataset))
    for i in range(n):
        yield dataset[i]


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def run(checkpoint: str, source: str = "toy", scenes: int = 200, source_args: Optional[Dict] = None,
        output: Optional[str] = None, grid: Optional[str] = None, grid_per_task: int = 4,
        device: Optional[str] = "cpu", threads: int = 0, extra: bool = True) -> Dict:
    """Evaluate and return the JSON-ready report (also written to ``output``)."""
    import torch
    from tqdm import tqdm

    from ..model.pipeline import AnyRefPipeline
    from ..training import toy_preset  # noqa: F401  (the "toy" preset)
    from .grid import save_grid
    from ..scoring.runner import evaluate

    if threads > 0:
        torch.set_num_threads(threads)
    pipe = AnyRefPipeline.from_pretrained(checkpoint, device=device)
    seg = pipe.config.tokens.seg
    if source == "toy":
        samples = toy_samples(scenes, (source_args or {}).get("size", (160, 120)), seg, extra)
        total = toy_sample_count(scenes, extra)
    else:
        samples = reader_samples(source, source_args or {}, scenes, seg)
        total = scenes if scenes > 0 else None
    start = time.perf_counter()
    with tqdm(total=total, desc="anyref-eval", dynamic_ncols=True, mininterval=2.0) as bar:
        result = evaluate(pipe, samples, grid_per_task=grid_per_task if grid else 0, progress=bar)
    seconds = time.perf_counter() - start
    report = {"checkpoint": str(checkpoint), "model": pipe.config.name, "source": source,
              "source_args": source_args or {}, "samples": sum(int(t["count"]) for t in result["tasks"].values()),
              "seconds": round(seconds, 1), "tasks": _clean(result["tasks"]),
              "overall": _clean(result["overall"])}
    if source == "toy":
        from ..data.toy import EVAL_SEED

        report["seed"] = EVAL_SEED
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(report, indent=2) + "\n")
    if grid and result["grid"]:
        save_grid(result["grid"], grid)
        report["grid"] = str(grid)
    return report


def summary_lines(report: Dict) -> List[str]:
    lines = [f"{report['model']} on {report['samples']} {report['source']} samples "
             f"({report['seconds']} s)"]
    groups = dict(report["tasks"])
    if report.get("overall"):
        groups["overall"] = report["overall"]
    for task, scores in groups.items():
        shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in scores.items() if k not in ("METEOR_note",))
        lines.append(f"  {task}: {shown}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anyref-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint folder (default: the preset itself)")
    parser.add_argument("--preset", default=None, help="preset name (used when no checkpoint is given)")
    parser.add_argument("--source", default="toy",
                        help="toy, refer, grefcoco, reasonseg, coco, coco_exemplar, ade20k or avsbench")
    parser.add_argument("--source-args", default="{}", help="JSON constructor arguments of the reader")
    parser.add_argument("--scenes", type=int, default=200, help="number of samples (0: all, readers)")
    parser.add_argument("--output", default=None, help="JSON report path")
    parser.add_argument("--grid", default=None, help="picture grid PNG path")
    parser.add_argument("--grid-per-task", type=int, default=4)
    parser.add_argument("--no-extra", action="store_true",
                        help="toy: only the four tasks (no text_absent / audio_offset groups)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    checkpoint = args.checkpoint or args.preset
    if checkpoint is None:
        raise SystemExit("anyref-eval: give --checkpoint FOLDER or --preset NAME")
    if args.preset and args.checkpoint:
        from ..model.config import AnyRefConfig

        name = AnyRefConfig.load(args.checkpoint).name
        if name != args.preset:
            raise SystemExit(f"anyref-eval: {args.checkpoint} holds a {name!r} model, not {args.preset!r}")
    report = run(checkpoint, source=args.source, scenes=args.scenes,
                 source_args=json.loads(args.source_args), output=args.output, grid=args.grid,
                 grid_per_task=args.grid_per_task, device=args.device, threads=args.threads,
                 extra=not args.no_extra)
    print(json.dumps(report, indent=2) if args.output is None else "\n".join(summary_lines(report)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
