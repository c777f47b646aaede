"""What standing queries cost (``watch_fps_*`` and ``watch_latency_ms_4`` of anyref-benchmark).

The node's standing-query path without ROS: a camera thread puts a new
640x480 toy frame in a one-frame slot at 100 Hz (a newer frame replaces one
not yet taken, as the node does); the worker takes the newest frame and
submits every standing text query on it to the :class:`~anyref_ros.engine.Engine`
together (``submit_standing``: one image encoding, one batch), then waits
for all of them. ``watch_fps_N``: frames answered per second with N
standing queries; ``watch_latency_ms_4``: from a frame's arrival in the
slot to its last answer, median, with 4 standing queries;
``watch_one_shot_ms_0`` / ``_8``: a one-shot text query on a new frame
(its encoding included), median, with no standing query / while 8 run;
``watch_one_shot_ratio_8`` their ratio.
"""

from __future__ import annotations

import statistics
import threading
import time

#: Faster than the model answers, so the figures are the model's rate, not the camera's.
CAMERA_HZ = 100.0
QUERIES = ["red circle", "blue square", "green triangle", "yellow circle", "red square", "blue triangle",
           "green square", "yellow triangle"]


def measure_watch(pipe, seconds: float = 3.0, size: tuple[int, int] = (640, 480), max_batch: int = 8) -> dict:
    from anyref_ros.data.toy import ToyWorld
    from anyref_ros.engine import Engine, Frame, Request

    frames = [ToyWorld(seed=5, size=size).sample(i, "text").image for i in range(12)]
    engine = Engine(pipe, max_queue=4, max_batch=max_batch, cache_frames=2)
    out: dict = {}
    try:
        for n in (1, 4, 8):
            slot: dict = {}
            lock, stop = threading.Lock(), threading.Event()

            def camera() -> None:
                k = 0
                while not stop.is_set():
                    k += 1
                    with lock:
                        slot["frame"] = (k, frames[k % len(frames)], time.perf_counter())
                    stop.wait(1.0 / CAMERA_HZ)

            thread = threading.Thread(target=camera, daemon=True)
            thread.start()
            answered, latencies, last = 0, [], None
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                with lock:
                    taken = slot.pop("frame", None)
                if taken is None or taken[0] == last:
                    time.sleep(0.001)
                    continue
                key, image, arrived = taken
                shared = Frame(image=image, key=key)
                jobs = engine.submit_standing([Request(frame=shared, text=t) for t in QUERIES[:n]], limit=n)
                for job in jobs:
                    job.result(600)
                latencies.append((time.perf_counter() - arrived) * 1000.0)
                answered, last = answered + 1, key
            elapsed = time.perf_counter() - start
            stop.set()
            thread.join(1.0)
            out[f"watch_fps_{n}"] = round(answered / elapsed, 2)
            if n == 4:
                out["watch_latency_ms_4"] = round(statistics.median(latencies), 1)
        out.update(_one_shot(engine, frames, Frame, Request))
    finally:
        engine.close()
    out["watch_fps_8_vs_1"] = round(out["watch_fps_8"] / out["watch_fps_1"], 3) if out["watch_fps_1"] else None
    return out


def _one_shot(engine, frames, Frame, Request, repeats: int = 6) -> dict:
    """One-shot latency alone and among 8 standing queries that run back to back."""
    keys = iter(range(10_000, 1 << 30))

    def one() -> float:
        t = time.perf_counter()
        engine.submit(Request(frame=Frame(image=frames[0], key=next(keys)), text="blue square")).result(600)
        return (time.perf_counter() - t) * 1000.0

    alone = statistics.median(one() for _ in range(repeats))
    stop = threading.Event()

    def standing() -> None:
        while not stop.is_set():
            shared = Frame(image=frames[1], key=next(keys))
            for job in engine.submit_standing([Request(frame=shared, text=t) for t in QUERIES], limit=8):
                job.result(600)

    thread = threading.Thread(target=standing, daemon=True)
    thread.start()
    loaded = []
    for _ in range(repeats):
        time.sleep(0.03)
        loaded.append(one())
    stop.set()
    thread.join(30)
    among = statistics.median(loaded)
    return {"watch_one_shot_ms_0": round(alone, 1), "watch_one_shot_ms_8": round(among, 1),
            "watch_one_shot_ratio_8": round(among / alone, 2)}
