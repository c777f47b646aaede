"""What an answer costs outside the network, on the node's path
(issue 9's ``overhead_ms_720p``).

:func:`measure_overhead` times, for one camera frame of ``size`` (1280x720 by
default) arriving as a ``sensor_msgs/Image`` rgb8 and one answer with a mask:

* ``conversion``: the message to an RGB array (the node's ``decode_frame``;
  a view of the message's buffer for unpadded rgb8);
* ``preprocess``: the pipeline's image pre-processing around the encoders
  (``check_image``, ``sam_pixels``, ``clip_pixels``);
* ``postprocess``: the mask decoder's low-resolution logits to the answer's
  mask as ``AnyRefPipeline._answer`` does it (``masks_at_size``: one
  resampling and the threshold; union of the masks, ``mask_box``);
* ``reply``: the Referral the node publishes and returns
  (:func:`~anyref_ros.nodes.anyref.publishing.build_referral`, its mono8 mask Image included).

The frame is a toy-world scene at ``size`` and the logits are made from its
object's mask, so the mask has a realistic size; the network itself never
runs (only ``config`` is needed, no weights). Times are medians over
``repeats`` in milliseconds, with torch's current thread count; no rclpy
context is needed. Nothing here is a pass/fail threshold (anyref-benchmark
prints the figure).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable, Union

import numpy as np

STEPS = ("conversion", "preprocess", "postprocess", "reply")


def load_config(config):
    """``config`` as an AnyRefConfig: one already, a checkpoint folder or a config file, or a preset name."""
    from anyref_ros.model.config import AnyRefConfig
    from anyref_ros.model.presets import get_preset

    if isinstance(config, AnyRefConfig):
        return config
    if Path(config).exists():
        return AnyRefConfig.load(config)
    return get_preset(str(config))


def measure_overhead(config: Union[object, str, Path], size: tuple[int, int] = (1280, 720),
                     repeats: int = 20) -> dict:
    """Median milliseconds of everything outside the network for one answer on a
    ``size`` = (width, height) rgb8 frame (module docstring): ``overhead_ms``
    (the median of the per-repeat totals; also as ``overhead_ms_720p`` when
    ``size`` is 1280x720), ``steps_ms`` (median per step), ``conversion_bgr8_ms``
    (the conversion of the same frame sent as bgr8, not in the total), ``size``,
    ``repeats`` and ``torch_threads``."""
    import torch
    from std_msgs.msg import Header

    from anyref_ros.data.toy import ToyWorld
    from anyref_ros.model import processing as P
    from anyref_ros.model.pipeline import Referral as Answer
    from anyref_ros.msg import Referral
    from anyref_ros.nodes import conversions as conv

    from anyref_ros.nodes.anyref.intake import decode_frame
    from anyref_ros.nodes.anyref.publishing import build_referral

    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    width, height = (int(v) for v in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be (width, height) > 0, got {size}")
    cfg = load_config(config)
    sample = ToyWorld(0, size=(width, height)).sample(0, "text")
    header = Header(frame_id="camera")
    msg = conv.numpy_to_image(sample.image, "rgb8", header)
    bgr_msg = conv.numpy_to_image(np.ascontiguousarray(sample.image[:, :, ::-1]), "bgr8", header)
    limit = width * height
    logits = _low_res_logits(sample.mask, cfg.sam, P)

    state: dict = {}

    def conversion() -> None:
        state["rgb"] = decode_frame(msg, limit)

    def preprocess() -> None:
        rgb = P.check_image(state["rgb"])
        _, state["resized"] = P.sam_pixels(rgb, cfg.sam)
        P.clip_pixels(rgb, cfg.vision)

    def postprocess() -> None:
        binary = P.masks_at_size(logits, cfg.sam.image_size, state["resized"], (height, width),
                                 cfg.sam.mask_threshold)
        mask = np.zeros((height, width), dtype=bool)
        for m in binary:
            mask |= m
        state["answer"] = Answer(mask=mask, text=f"{sample.query}.", score=0.9, box=P.mask_box(mask),
                                 found=bool(mask.any()))

    def reply() -> None:
        state["msg"] = build_referral(state["answer"], header, sample.query, Referral.TYPE_TEXT, 0.1)

    steps: dict[str, Callable[[], None]] = dict(zip(STEPS, (conversion, preprocess, postprocess, reply)))
    with torch.inference_mode():
        for fn in steps.values():  # warm-up: imports, allocator, first-call costs
            fn()
        times = {name: [] for name in STEPS}
        totals = []
        for _ in range(repeats):
            total = 0.0
            for name, fn in steps.items():
                t = time.perf_counter()
                fn()
                ms = (time.perf_counter() - t) * 1000.0
                times[name].append(ms)
                total += ms
            totals.append(total)
        bgr = _median_ms(lambda: decode_frame(bgr_msg, limit), repeats)
    if not state["msg"].found or state["msg"].mask_area == 0:
        raise RuntimeError("the measured answer has no mask; the overhead figure would not be representative")
    out = {"overhead_ms": round(statistics.median(totals), 3)}
    if (width, height) == (1280, 720):
        out["overhead_ms_720p"] = out["overhead_ms"]
    out.update(steps_ms={name: round(statistics.median(v), 3) for name, v in times.items()},
               conversion_bgr8_ms=round(bgr, 3), size=f"{width}x{height}", repeats=repeats,
               torch_threads=torch.get_num_threads())
    return out


def _low_res_logits(mask: np.ndarray, sam, P):
    """(1, 1, s, s) logits as the mask decoder gives them (s = 4 x the SAM
    embedding size) for ``mask`` (H, W): +-8 inside/outside, resized like the
    SAM input and zero padded (outside) to a square."""
    import torch
    import torch.nn.functional as F

    h, w = mask.shape
    scale = sam.image_size / max(h, w)
    rh, rw = int(h * scale + 0.5), int(w * scale + 0.5)
    x = torch.from_numpy(mask.astype(np.float32))[None, None]
    x = F.interpolate(x, (rh, rw), mode="bilinear", align_corners=False)
    x = F.pad(x, (0, sam.image_size - rw, 0, sam.image_size - rh))
    low = 4 * sam.embedding_size
    x = F.interpolate(x, (low, low), mode="bilinear", align_corners=False)
    return (x - 0.5) * 16.0


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


def main(argv=None) -> None:
    """``python -m anyref_ros.tools.overhead [CHECKPOINT] [--size WxH] [--repeats N]``: JSON."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Milliseconds outside the network for one answer on the node's path.")
    ap.add_argument("checkpoint", nargs="?", default="model/toy", help="checkpoint folder, config file or preset")
    ap.add_argument("--size", default="1280x720", help="frame size WxH")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    print(json.dumps(measure_overhead(args.checkpoint, (w, h), args.repeats), indent=2))


if __name__ == "__main__":
    main()
