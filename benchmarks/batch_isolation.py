"""What a fault in one batched query costs (a development measurement, not a test).

    .venv/bin/python benchmarks/batch_isolation.py [--checkpoint model/toy] [--repeats 5]

Eight text queries on one frame go through the engine as one batch, with no
fault, with query 3 raising inside the batched forward pass (the batch is run
again query by query: seven answers, one error), and with the batch running out
of memory once (every query retried alone). Faults come from the tests' fault
plan (tests/faults.py) through the engine's test seam. Prints medians in ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from faults import FaultPlan  # noqa: E402

from anyref_ros.engine import Engine, Frame, Request  # noqa: E402
from anyref_ros.model import AnyRefPipeline  # noqa: E402

TEXTS = ["red circle", "blue square", "green triangle", "yellow star", "the small red circle",
         "the big blue square", "a green shape", "the yellow one on the left"]


def one_batch(pipe, plan: str, key: int) -> tuple[float, int]:
    """Milliseconds from release of the held batch to its last answer; answers that failed."""
    engine = Engine(pipe, max_queue=16, max_batch=8, hook=FaultPlan.parse(plan) if plan else None)
    frame = Frame(image=np.random.default_rng(key).integers(0, 256, (480, 640, 3), dtype=np.uint8), key=key)
    engine.submit(Request(frame=frame, text="warm")).result(120)  # the frame is encoded and cached
    entered, release = threading.Event(), threading.Event()

    def hold(job, stage):
        if stage == "encoding_image" and not release.is_set():
            entered.set()
            release.wait(30)

    jobs = [engine.submit(Request(frame=frame, text=TEXTS[0]), on_stage=hold)]
    entered.wait(30)
    jobs += [engine.submit(Request(frame=frame, text=t)) for t in TEXTS[1:]]
    t = time.perf_counter()
    release.set()
    failed = 0
    for job in jobs:
        try:
            job.result(120)
        except Exception:  # noqa: BLE001 - counted
            failed += 1
    ms = (time.perf_counter() - t) * 1000.0
    engine.close()
    return ms, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "model" / "toy"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    pipe = AnyRefPipeline.from_pretrained(args.checkpoint, device=args.device)
    # query 1 is the warm-up; the batch holds queries 2..9: query 4 is its third
    for name, plan in (("all good", ""), ("query 3 raises", "exception:4"), ("out of memory once", "oom:4")):
        runs = [one_batch(pipe, plan, key) for key in range(args.repeats)]
        print(f"batch of 8, {name:<20} {statistics.median(ms for ms, _ in runs):8.1f} ms "
              f"(median of {args.repeats}), failed answers: {runs[0][1]}")


if __name__ == "__main__":
    main()
