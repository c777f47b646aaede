"""The inference engine on a real (tiny, random) AnyRef pipeline: per-frame
cache, bounded queue, cancel, errors, shutdown."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from anyref_ros.engine import Cancelled, Engine, EngineClosed, Frame, QueueFull, Request
from anyref_ros.model import AnyRefPipeline


@pytest.fixture(scope="module")
def pipeline():
    return AnyRefPipeline.from_pretrained("tiny", device="cpu")


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)


def blocker():
    """An on_stage callback that holds the worker at its first stage until released."""
    entered, release = threading.Event(), threading.Event()

    def on_stage(job, stage):
        if stage == "encoding_image":
            entered.set()
            release.wait(30)

    return on_stage, entered, release


def test_queries_on_one_frame_encode_it_once(pipeline, image):
    engine = Engine(pipeline, max_queue=4)
    frame = Frame(image=image, key=7)
    stages = []
    jobs = [engine.submit(Request(frame=frame, text=t), on_stage=lambda j, s: stages.append((j.id, s)))
            for t in ("red circle", "blue square")]
    jobs.append(engine.submit(Request(frame=frame, box=(5, 5, 40, 30))))
    results = [job.result(timeout=60) for job in jobs]
    for r in results:
        assert r.mask.shape == (60, 80)
    stats = engine.stats()
    assert stats["frames_encoded"] == 1 and stats["cache_hits"] == 2 and stats["succeeded"] == 3
    assert [s for i, s in stages if i == jobs[0].id] == ["encoding_image", "generating", "done"]
    assert "total" in stats["stage_ms"]
    engine.close()


def test_full_queue_rejects_at_once_and_cancel_frees_a_slot(pipeline, image):
    engine = Engine(pipeline, max_queue=2)
    on_stage, entered, release = blocker()
    frame = Frame(image=image)
    running = engine.submit(Request(frame=frame, text="red circle"), on_stage=on_stage)
    assert entered.wait(30)
    waiting = [engine.submit(Request(frame=frame, text="red circle")) for _ in range(2)]
    assert engine.queue_position(waiting[1]) == 2
    with pytest.raises(QueueFull, match="max_queue=2"):
        engine.submit(Request(frame=frame, text="one too many"))
    assert engine.cancel(waiting[0])
    with pytest.raises(Cancelled):
        waiting[0].result(timeout=1)
    extra = engine.submit(Request(frame=frame, text="green triangle"))
    release.set()
    assert running.result(timeout=60).mask.shape == (60, 80)
    assert extra.result(timeout=60).mask.shape == (60, 80)
    stats = engine.stats()
    assert stats["rejected"] == 1 and stats["cancelled"] == 1
    engine.close()


def test_bad_input_fails_the_job_not_the_engine(pipeline, image):
    engine = Engine(pipeline)
    bad = engine.submit(Request(frame=Frame(image=image), text=""))
    with pytest.raises(ValueError):
        bad.result(timeout=30)
    box = engine.submit(Request(frame=Frame(image=image), box=(0, 0, 500, 500)))
    with pytest.raises(ValueError):
        box.result(timeout=30)
    good = engine.submit(Request(frame=Frame(image=image), text="yellow square"))
    assert good.result(timeout=60).mask.shape == (60, 80)
    assert engine.stats()["failed"] == 2
    engine.close()


def test_close_cancels_waiting_jobs_and_refuses_new_ones(pipeline, image):
    engine = Engine(pipeline, max_queue=3)
    on_stage, entered, release = blocker()
    running = engine.submit(Request(frame=Frame(image=image), text="red circle"), on_stage=on_stage)
    assert entered.wait(30)
    waiting = engine.submit(Request(frame=Frame(image=image), text="blue circle"))
    threading.Timer(0.2, release.set).start()
    engine.close(timeout=30)
    with pytest.raises(Cancelled):
        waiting.result(timeout=1)
    assert running.result(timeout=1).mask.shape == (60, 80)
    with pytest.raises(EngineClosed):
        engine.submit(Request(frame=Frame(image=image), text="red circle"))


def test_refocus_weight_is_per_query(pipeline, image):
    """A request's refocus_lambda reaches the pipeline without touching its config."""
    default = pipeline.config.refocus.segment
    engine = Engine(pipeline)
    got = engine.submit(Request(frame=Frame(image=image), text="red circle", refocus_lambda=0.0)).result(timeout=60)
    expected = pipeline.segment(image, text="red circle", refocus_lambda=0.0)
    np.testing.assert_array_equal(got.mask, expected.mask)
    assert pipeline.config.refocus.segment == default
    engine.close()
