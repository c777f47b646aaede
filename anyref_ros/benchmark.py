"""anyref-benchmark: what a query costs, per stage, as JSON.

    anyref-benchmark                                   # model/toy on the default device
    anyref-benchmark --checkpoint tiny --device cpu --repeats 5
    anyref-benchmark --checkpoint /models/anyref --device cuda:0 --dtype float16 --size 1280x720

For each reference type it reports the median and best wall time over
``--repeats`` runs, on a frame that is already encoded (the node's per-frame
cache) and with the image encoders included, plus load time and peak memory
(process RSS; on CUDA also torch's peak allocation). Nothing here is a
pass/fail threshold: compare the numbers with README's table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from typing import Callable, Optional

import numpy as np


def _timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000.0)
    return {"median_ms": round(statistics.median(times), 3), "best_ms": round(min(times), 3)}


def run(checkpoint: str, device: Optional[str], dtype: Optional[str], size: tuple[int, int], repeats: int) -> dict:
    import torch

    from anyref_ros.data.toy import ToyWorld
    from anyref_ros.model import AnyRefPipeline

    t = time.perf_counter()
    pipe = AnyRefPipeline.from_pretrained(checkpoint, device=device, dtype=dtype)
    load_s = time.perf_counter() - t
    dev = pipe.model.device

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    world = ToyWorld(seed=3, size=size)
    samples = {task: world.sample(i, task) for i, task in enumerate(("text", "exemplar", "audio", "region"))}
    image = samples["text"].image
    box = samples["region"].box
    region = (box[0], box[1], box[2] + 1, box[3] + 1)  # inclusive -> exclusive max
    has_audio = pipe.config.audio is not None

    queries: dict[str, Callable] = {
        "text": lambda f: pipe.segment(f, text=samples["text"].query),
        "exemplar": lambda f: pipe.segment(f, exemplar=samples["exemplar"].exemplar,
                                           exemplar_mask=samples["exemplar"].exemplar_mask),
        "region": lambda f: pipe.describe(f, region),
    }
    if has_audio:
        audio = samples["audio"]
        queries["audio"] = lambda f: pipe.segment(f, audio=audio.audio, sample_rate=audio.sample_rate)
        queries["text+audio"] = lambda f: pipe.segment(f, text=samples["text"].query, audio=audio.audio,
                                                       sample_rate=audio.sample_rate)

    for q in queries.values():  # warm-up: first calls allocate and pick kernels
        q(pipe.encode_image(image))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    features = pipe.encode_image(image)
    result = {
        "checkpoint": checkpoint,
        "device": str(dev),
        "dtype": str(next(pipe.model.parameters()).dtype).replace("torch.", ""),
        "image_size": list(size),
        "repeats": repeats,
        "load_s": round(load_s, 3),
        "encode_image": _timed(lambda: pipe.encode_image(image), repeats, sync),
        "query_on_cached_frame": {k: _timed(lambda q=q: q(features), repeats, sync) for k, q in queries.items()},
        "query_with_encoding": {k: _timed(lambda q=q: q(image), repeats, sync) for k, q in queries.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "host": {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads()},
    }
    if dev.type == "cuda":
        result["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
        result["host"]["gpu"] = torch.cuda.get_device_name(dev)
    return result


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="anyref-benchmark", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="model/toy", help="checkpoint folder or preset (default model/toy)")
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    ap.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: the checkpoint's)")
    ap.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size: expected WxH such as 640x480, got {args.size!r}")
    from anyref_ros import ros_env

    ros_env.configure()  # offline hubs
    print(json.dumps(run(args.checkpoint, args.device, args.dtype, (w, h), max(1, args.repeats)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
