"""anyref-benchmark: what a query costs, per stage, as JSON.

    anyref-benchmark                                   # model/toy on the default device
    anyref-benchmark --checkpoint tiny --device cpu --repeats 5
    anyref-benchmark --checkpoint /models/anyref --device cuda:0 --dtype float16 --size 1280x720
    anyref-benchmark --preset anyref-7b --random-weights --device cuda --dtype bfloat16 --quantization 4bit
    anyref-benchmark --preset anyref-7b --random-weights --device cpu --dtype bfloat16 --repeats 1 --headline-only

For each reference type it reports the median and best wall time over
``--repeats`` runs, on a frame that is already encoded (the node's per-frame
cache) and with the image encoders included, plus load time and peak memory
(process RSS; on CUDA also torch's peak allocation).  The same JSON object
also holds these flat headline figures (medians, milliseconds unless named
otherwise):

* ``single_query_ms``: one text query on a new frame, through the
  ``Engine``, encoding included;
* ``eight_queries_same_frame_ms``: eight different text queries about one
  new frame submitted at once to the ``Engine``, until the last answer;
* ``cached_query_ms``: one text query on an already encoded frame;
* ``prefix_cache_speedup``: that query without / with the shared-prefix KV
  cache (``prefix_cache_lm_speedup``: its language-model stage alone);
* ``forced_vs_generate_speedup``: a text query answered by greedy generation
  / by the forced single pass;
* ``overhead_ms_720p``: everything outside the network for a 1280x720
  ``sensor_msgs/Image`` (``anyref_ros.tools.overhead``; null where
  the ROS messages cannot be imported);
* ``outputs_3d_ms_720p``: an answer's 3D outputs from a 1280x720 depth
  image (the object's points, the transform to ``base_link``, its oriented
  box, Detection3DArray, PointCloud2, markers; :mod:`anyref_ros.tools.benchmark_3d`;
  null where the ROS messages cannot be imported);
* ``sound_direction_ms``: a sound event's direction from a 4-mic array and
  the choice of the object in that direction on a 640x480 image
  (:mod:`anyref_ros.tools.benchmark_direction`; no network);
* ``watch_fps_1``, ``watch_fps_4``, ``watch_fps_8``: camera frames answered
  per second with 1, 4, 8 standing text queries (640x480 toy frames from a
  100 Hz camera, newest frame wins; :mod:`anyref_ros.tools.benchmark_watch`), and
  ``watch_latency_ms_4``: a frame's arrival to its last answer, median, with 4;
* ``peak_memory_mb``: CUDA's peak allocation on a GPU, else the process's peak RSS.

Nothing here is a pass/fail threshold: compare the numbers with
``benchmarks/RESULTS.md``.
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


def _load(checkpoint: str, device: Optional[str], dtype: Optional[str], **options):
    """``AnyRefPipeline.from_pretrained`` with ``options`` (quantization,
    random_weights) passed only when set."""
    import inspect

    from anyref_ros.model import AnyRefPipeline

    options = {k: v for k, v in options.items() if v}
    accepted = inspect.signature(AnyRefPipeline.from_pretrained).parameters
    if all(k in accepted for k in options):
        return AnyRefPipeline.from_pretrained(checkpoint, device=device, dtype=dtype, **options)
    from anyref_ros.model.loading import load_pipeline

    return load_pipeline(AnyRefPipeline, checkpoint, device=device, dtype=dtype, **options)


def _scene_queries(world, count: int = 8) -> tuple:
    """The first toy text sample whose scene can be named ``count`` different
    ways ("{colour} {shape}", "{shape}", "{colour} object" for present
    objects); returns (sample, queries)."""
    best = None
    for index in range(200):
        sample = world.sample(index, "text")
        objects = sample.metadata["objects"]
        shapes = [o["shape"] for o in objects]
        colours = [o["colour"] for o in objects]
        forms = [sample.query]
        for o in objects:
            forms.append(f"{o['colour']} {o['shape']}")
            if shapes.count(o["shape"]) == 1:
                forms.append(o["shape"])
            if colours.count(o["colour"]) == 1:
                forms.append(f"{o['colour']} object")
        forms = list(dict.fromkeys(forms))
        if best is None or len(forms) > len(best[1]):
            best = (sample, forms)
        if len(forms) >= count:
            break
    sample, forms = best
    return sample, (forms * count)[:count]


def _paired(fns: dict, repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    """Median milliseconds of each function, run in turns (one of each per
    repeat), so that a load that comes and goes weighs on all of them alike."""
    times: dict[str, list] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - t) * 1000.0)
    return {name: round(statistics.median(v), 3) for name, v in times.items()}


def headline(pipe, image, queries: list, repeats: int, sync: Callable[[], None]) -> dict:
    """The flat figures of the module docstring (all but overhead and memory)."""
    from anyref_ros.engine import Engine, Frame, Request

    keys = iter(range(1, 1 << 30))
    engine = Engine(pipe, max_queue=len(queries), max_batch=len(queries), cache_frames=2)
    try:
        def one() -> None:
            engine.submit(Request(frame=Frame(image=image, key=next(keys)), text=queries[0])).result(600)

        def eight() -> None:
            frame = Frame(image=image, key=next(keys))
            jobs = [engine.submit(Request(frame=frame, text=q)) for q in queries]
            for job in jobs:
                job.result(600)

        one(), eight()  # warm-up
        before = engine.stats()
        new_frame = _paired({"one": one, "eight": eight}, repeats, sync)
        after = engine.stats()
    finally:
        engine.close()
    batches = after.get("batches", 0) - before.get("batches", 0)
    features = pipe.encode_image(image)

    lm_ms: dict[str, list] = {"with": [], "without": []}

    def cached(prefix_cache: bool = True, decoding: str = "auto", name: str = ""):
        def query() -> None:
            was, pipe.prefix_cache = pipe.prefix_cache, prefix_cache
            try:
                referral = pipe.segment(features, text=queries[0], decoding=decoding)
            finally:
                pipe.prefix_cache = was
            if name:
                lm_ms[name].append(referral.timings["language_model"] * 1000.0)
        return query

    fns = {"with": cached(name="with"), "without": cached(prefix_cache=False, name="without"),
           "greedy": cached(decoding="greedy")}
    t = time.perf_counter()
    for fn in fns.values():
        fn()
    warm_up_s = time.perf_counter() - t
    for warm_up in lm_ms.values():
        warm_up.clear()
    # queries on an encoded frame are cheap on a small model, and the prefix cache's
    # gain there is a few percent: more turns, so that the medians' ratio is not
    # noise (not for a model whose three queries take seconds)
    on_frame = _paired(fns, max(4 * repeats, 20) if warm_up_s < 1.0 else repeats, sync)
    lm = {name: statistics.median(v) for name, v in lm_ms.items()}
    return {
        "single_query_ms": new_frame["one"],
        "eight_queries_same_frame_ms": new_frame["eight"],
        "eight_over_single": round(new_frame["eight"] / new_frame["one"], 3),
        # model calls the eight queries took (1: one batch); the single queries take one each
        "eight_queries_model_calls": round((batches - repeats) / repeats, 2),
        "cached_query_ms": on_frame["with"],
        "cached_query_without_prefix_cache_ms": on_frame["without"],
        "prefix_cache_speedup": round(on_frame["without"] / on_frame["with"], 3),
        # the language-model stage alone (what the prefix cache shortens)
        "prefix_cache_lm_speedup": round(lm["without"] / lm["with"], 3),
        "generated_query_ms": on_frame["greedy"],
        "forced_vs_generate_speedup": round(on_frame["greedy"] / on_frame["with"], 3),
    }


def overhead(config) -> dict:
    """``overhead_ms_720p`` from the node's overhead measurement, or null with the reason."""
    try:
        from anyref_ros.tools.overhead import measure_overhead
    except Exception as exc:  # noqa: BLE001 - ROS messages missing: figure left out
        return {"overhead_ms_720p": None, "overhead_error": f"{type(exc).__name__}: {exc}"[:300]}
    data = measure_overhead(config, size=(1280, 720), repeats=20)
    return {"overhead_ms_720p": data.get("overhead_ms_720p"), "overhead": data}


def outputs_3d() -> dict:
    """``outputs_3d_ms_720p`` (:mod:`anyref_ros.tools.benchmark_3d`), or null with the reason."""
    try:
        from anyref_ros.tools.benchmark_3d import measure_outputs_3d
        return measure_outputs_3d((1280, 720), repeats=30)
    except ImportError as exc:  # ROS messages missing: figure left out
        return {"outputs_3d_ms_720p": None, "outputs_3d_error": f"{type(exc).__name__}: {exc}"[:300]}


def run(checkpoint: str, device: Optional[str], dtype: Optional[str], size: tuple[int, int], repeats: int,
        quantization: Optional[str] = None, random_weights: bool = False, threads: int = 0,
        headline_only: bool = False) -> dict:
    import os

    import torch

    from anyref_ros.data.toy import ToyWorld

    t = time.perf_counter()
    pipe = _load(checkpoint, device, dtype, quantization=quantization, random_weights=random_weights)
    load_s = time.perf_counter() - t
    dev = pipe.model.device
    if dev.type == "cpu":  # as the node's cpu_threads: 0 = half the usable cores
        torch.set_num_threads(threads if threads > 0 else max(1, len(os.sched_getaffinity(0)) // 2))

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    world = ToyWorld(seed=3, size=size)
    samples = {task: world.sample(i, task) for i, task in enumerate(("text", "exemplar", "audio", "region"))}
    samples["text"], text_queries = _scene_queries(world)
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

    if headline_only:  # the flat figures only (a full-size model on a CPU: minutes per pass)
        queries = {"text": queries["text"]}
    features = None
    for q in queries.values():  # warm-up: first calls allocate and pick kernels
        features = pipe.encode_image(image)
        q(features)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    result = headline(pipe, image, text_queries, repeats, sync)
    result.update(overhead(pipe.config))
    result.update(outputs_3d())
    from anyref_ros.tools.benchmark_direction import measure_direction

    result.update(measure_direction())
    from anyref_ros.tools.benchmark_watch import measure_watch

    result.update(measure_watch(pipe, seconds=1.0 if headline_only else 3.0))
    result.update({
        "checkpoint": checkpoint,
        "device": str(dev),
        "dtype": str(next(pipe.model.parameters()).dtype).replace("torch.", ""),
        "image_size": list(size),
        "repeats": repeats,
        "load_s": round(load_s, 3),
    })
    if not headline_only:
        result.update({
            "encode_image": _timed(lambda: pipe.encode_image(image), repeats, sync),
            "query_on_cached_frame": {k: _timed(lambda q=q: q(features), repeats, sync) for k, q in queries.items()},
            "query_with_encoding": {k: _timed(lambda q=q: q(image), repeats, sync) for k, q in queries.items()},
        })
    result.update({
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "host": {"python": platform.python_version(), "torch": torch.__version__, "cpu_threads": torch.get_num_threads()},
    })
    if quantization:
        result["quantization"] = quantization
    if random_weights:
        result["random_weights"] = True
    result["peak_memory_mb"] = result["peak_rss_mb"]
    if dev.type == "cuda":
        result["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
        result["peak_memory_mb"] = result["cuda_peak_allocated_mb"]
        result["host"]["gpu"] = torch.cuda.get_device_name(dev)
    return result


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="anyref-benchmark", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="model/toy", help="checkpoint folder or preset (default model/toy)")
    ap.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available)")
    ap.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: the checkpoint's)")
    ap.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads on a CPU; 0 (default) = half the usable cores, as the node's cpu_threads")
    ap.add_argument("--quantization", choices=("none", "8bit", "4bit"), default=None,
                    help="language-model weights: none, 8bit or 4bit (bitsandbytes, CUDA; default: the checkpoint's)")
    ap.add_argument("--preset", default=None, metavar="NAME",
                    help="benchmark a preset's architecture (tiny, anyref-7b, lisa-7b) instead of --checkpoint")
    ap.add_argument("--random-weights", action="store_true",
                    help="random weights (with --preset: the full-size model without weight files; "
                         "time does not depend on the values)")
    ap.add_argument("--headline-only", action="store_true",
                    help="only the flat headline figures, text queries only (e.g. the full-size model on a CPU)")
    args = ap.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size: expected WxH such as 640x480, got {args.size!r}")
    from anyref_ros import ros_env

    ros_env.configure()  # offline hubs
    checkpoint = args.preset or args.checkpoint
    print(json.dumps(run(checkpoint, args.device, args.dtype, (w, h), max(1, args.repeats),
                         quantization=args.quantization, random_weights=args.random_weights,
                         threads=args.threads, headline_only=args.headline_only), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
