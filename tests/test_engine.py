"""The inference engine on a real (tiny, random) AnyRef pipeline: per-frame
cache, bounded queue, cancel, errors, shutdown, and faults injected inside
the model call through the engine's test seam (``hook``) with a fault plan
from tests/faults.py (an exception or CUDA out-of-memory raised inside the
language model's forward pass -- no GPU here, so the error is raised, not
provoked --, a slow, long or uninterruptible generation), and batches of
queries waiting for one frame."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import numpy as np
import pytest

from anyref_ros.engine import (
    Cancelled,
    Engine,
    EngineClosed,
    Frame,
    OutOfMemory,
    QueueFull,
    Request,
    is_out_of_memory,
)
from anyref_ros.model import AnyRefPipeline
from faults import FaultPlan


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
    assert [s for i, s in stages if i == jobs[0].id] == ["encoding_image", "encoding_reference", "generating",
                                                          "decoding_mask", "done"]
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
    stats = engine.stats()
    assert stats["failed"] == 2
    # Bad input is the caller's: it is not an engine fault for diagnostics.
    assert stats["consecutive_failures"] == 0 and stats["last_error"] is None
    engine.close()


def test_close_cancels_waiting_jobs_and_refuses_new_ones(pipeline, image):
    engine = Engine(pipeline, max_queue=3)
    on_stage, entered, release = blocker()
    running = engine.submit(Request(frame=Frame(image=image), text="red circle"), on_stage=on_stage)
    assert entered.wait(30)
    waiting = engine.submit(Request(frame=Frame(image=image), text="blue circle"))
    threading.Timer(0.2, release.set).start()
    engine.close(timeout=30)
    with pytest.raises(Cancelled, match="before this query ran"):
        waiting.result(timeout=1)
    # The running job was marked cancelled: it stopped at its next stage boundary.
    with pytest.raises(Cancelled, match="deactivated while this query ran"):
        running.result(timeout=1)
    assert engine.pipeline is None and engine.stats()["cancelled"] == 2
    with pytest.raises(EngineClosed):
        engine.submit(Request(frame=Frame(image=image), text="red circle"))
    engine.close()  # a second close does nothing


def test_close_answers_a_query_whose_model_call_does_not_return(image):
    """deactivate during a long, uninterruptible generation: the caller is
    answered within the timeout and the engine keeps no model alive."""
    pipeline = AnyRefPipeline.from_pretrained("tiny", device="cpu")
    model = weakref.ref(pipeline)
    engine = Engine(pipeline, hook=FaultPlan(hang=2.0))
    del pipeline
    generating = threading.Event()
    job = engine.submit(Request(frame=Frame(image=image, key=1), text="red circle"),
                        on_stage=lambda j, s: s == "generating" and generating.set())
    assert generating.wait(60)
    engine.close(timeout=0.1)
    assert job.done() and engine._worker.is_alive()  # answered while the model call still runs
    with pytest.raises(Cancelled, match="the node was deactivated while this query ran"):
        job.result(timeout=0)
    assert engine.pipeline is None and engine.stats()["cached_frames"] == 0
    engine._worker.join(60)
    assert not engine._worker.is_alive()
    gc.collect()
    assert model() is None  # the late call's model is freed once it returns
    with pytest.raises(Cancelled):
        job.result(timeout=0)  # its late result was discarded
    stats = engine.stats()
    assert stats["cancelled"] == 1 and stats.get("succeeded", 0) == 0


def test_close_stops_a_cooperative_slow_query(pipeline, image):
    engine = Engine(pipeline, hook=FaultPlan.parse("slow:60"))
    generating = threading.Event()
    job = engine.submit(Request(frame=Frame(image=image), text="red circle"),
                        on_stage=lambda j, s: s == "generating" and generating.set())
    assert generating.wait(60)
    engine.close(timeout=30)
    with pytest.raises(Cancelled, match="deactivated"):
        job.result(timeout=0)
    assert not engine._worker.is_alive()  # the slow stage saw the cancel; no 30 s wait


def test_exception_inside_the_model_fails_only_that_query(pipeline, image):
    engine = Engine(pipeline, hook=FaultPlan.parse("exception:2"))
    frame = Frame(image=image, key=3)
    first = engine.submit(Request(frame=frame, text="red circle"))
    assert first.result(timeout=60).mask.shape == (60, 80)
    second = engine.submit(Request(frame=frame, text="red circle"))
    with pytest.raises(RuntimeError, match="injected fault: query 2 raised inside the model"):
        second.result(timeout=60)
    stats = engine.stats()
    assert stats["failed"] == 1 and stats["consecutive_failures"] == 1
    assert stats["last_error"].startswith("RuntimeError: injected fault: query 2")
    third = engine.submit(Request(frame=frame, text="red circle"))
    assert third.result(timeout=60).mask.shape == (60, 80)
    assert engine._worker.is_alive()
    stats = engine.stats()
    assert stats["succeeded"] == 2 and stats["consecutive_failures"] == 0 and "query 2" in stats["last_error"]
    engine.close()


def test_out_of_memory_once_is_retried(pipeline, image):
    engine = Engine(pipeline, hook=FaultPlan.parse("oom:1"))
    frame = Frame(image=image, key=5)
    job = engine.submit(Request(frame=frame, text="red circle"))
    expected = pipeline.segment(image, text="red circle")
    np.testing.assert_array_equal(job.result(timeout=60).mask, expected.mask)
    stats = engine.stats()
    # The cache was dropped before the retry, so the frame was encoded twice.
    assert stats["oom_retries"] == 1 and stats["succeeded"] == 1 and stats["frames_encoded"] == 2
    assert stats.get("failed", 0) == 0 and stats["last_error"] is None
    engine.close()


def test_out_of_memory_twice_is_reported_with_advice(pipeline, image):
    engine = Engine(pipeline, hook=FaultPlan.parse("oom:1x2"))
    job = engine.submit(Request(frame=Frame(image=image, key=9), text="red circle"))
    with pytest.raises(OutOfMemory) as err:
        job.result(timeout=60)
    message = str(err.value)
    assert "retrying once" in message and "CUDA out of memory" in message
    assert "smaller images" in message and "bfloat16" in message and "another device" in message
    stats = engine.stats()
    assert stats["oom_retries"] == 1 and stats["failed"] == 1 and stats["cached_frames"] == 0
    assert stats["last_error"].startswith("OutOfMemory:")
    later = engine.submit(Request(frame=Frame(image=image), text="red circle"))
    assert later.result(timeout=60).mask.shape == (60, 80)
    engine.close()


def test_out_of_memory_detection():
    import torch

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))  # bad input, never retried


def test_fault_plan_syntax():
    plan = FaultPlan.parse("exception:2, exception:5,oom:1x2,oom:3,slow:0.5,hang:1,step:0.1")
    assert plan.exception == {2, 5} and plan.oom == {1: 2, 3: 1} and plan.slow == 0.5 and plan.hang == 1.0
    assert plan.step == 0.1
    for bad in ("exception", "exception:0", "oom:1x0", "slow:-1", "crash:1", "oom:x"):
        with pytest.raises(ValueError, match="fault plan: cannot read"):
            FaultPlan.parse(bad)


def test_no_fault_injection_from_the_environment(pipeline, image, monkeypatch):
    """The production engine reads nothing from the environment: the variable that
    used to switch faults on does nothing, and an engine says when a test seam is set."""
    monkeypatch.setenv("ANYREF_TEST_FAULTS", "exception:1")
    engine = Engine(pipeline)
    assert engine.hook is None and engine.stats()["test_hook"] is False
    assert engine.submit(Request(frame=Frame(image=image), text="red circle")).result(timeout=60).mask.shape == (60, 80)
    engine.close()
    import anyref_ros.engine as module

    source = open(module.__file__).read()
    assert "os.environ" not in source and "getenv" not in source
    assert Engine(pipeline, hook=FaultPlan()).stats()["test_hook"] is True


def test_refocus_weight_is_per_query(pipeline, image):
    """A request's refocus_lambda reaches the pipeline without touching its config."""
    default = pipeline.config.refocus.segment
    engine = Engine(pipeline)
    got = engine.submit(Request(frame=Frame(image=image), text="red circle", refocus_lambda=0.0)).result(timeout=60)
    expected = pipeline.segment(image, text="red circle", refocus_lambda=0.0)
    np.testing.assert_array_equal(got.mask, expected.mask)
    assert pipeline.config.refocus.segment == default
    engine.close()


def held_first(engine, request):
    """Submit ``request`` and hold the worker at its first stage; returns (job, release)."""
    on_stage, entered, release = blocker()
    job = engine.submit(request, on_stage=on_stage)
    assert entered.wait(30)
    return job, release


# ------------------------------------------------------------------ batches
# Queries waiting for the same frame are answered in one segment_batch call,
# each with its own result, error and cancel; the statistics report batch sizes.


def test_queries_waiting_for_one_frame_run_as_one_batch(pipeline, image):
    engine = Engine(pipeline, max_queue=8, max_batch=8)
    frame, other = Frame(image=image, key=1), Frame(image=image[::-1].copy(), key=2)
    first, release = held_first(engine, Request(frame=frame, text="red circle"))
    same = [engine.submit(Request(frame=frame, text=t)) for t in ("blue square", "the cat on the left")]
    region = engine.submit(Request(frame=frame, box=(5, 5, 40, 30)))
    bad = engine.submit(Request(frame=frame, text=""))
    dropped = engine.submit(Request(frame=frame, text="never answered"))
    elsewhere = engine.submit(Request(frame=other, text="red circle"))
    assert engine.cancel(dropped)
    release.set()
    results = [job.result(timeout=120) for job in [first, *same, region]]
    with pytest.raises(ValueError, match="text"):
        bad.result(timeout=60)
    with pytest.raises(Cancelled):
        dropped.result(timeout=1)
    assert elsewhere.result(timeout=60).mask.shape == (60, 80)
    expected = [pipeline.segment(image, text=t) for t in ("red circle", "blue square", "the cat on the left")]
    expected.append(pipeline.describe(image, (5, 5, 40, 30)))
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got.mask, want.mask)
        assert (got.text, got.found) == (want.text, want.found)
        assert got.score == pytest.approx(want.score, abs=1e-4)
    stats = engine.stats()
    # one batch of five (four answers and the bad one, refused inside it), then the other frame
    assert stats["batches"] == 2 and stats["max_batch_seen"] == 5 and stats["mean_batch"] == 3.0
    assert stats["frames_encoded"] == 2 and stats["cache_hits"] == 4
    assert stats["succeeded"] == 5 and stats["failed"] == 1 and stats["cancelled"] == 1
    assert stats["prefix_built"] >= 2 and stats["prefix_used"] >= 5 and stats["prefix_missed"] == 0
    engine.close()


def test_max_batch_caps_the_batch(pipeline, image):
    engine = Engine(pipeline, max_queue=8, max_batch=2)
    frame = Frame(image=image, key=3)
    first, release = held_first(engine, Request(frame=frame, text="red circle"))
    rest = [engine.submit(Request(frame=frame, text=t)) for t in ("a", "b", "c")]
    release.set()
    for job in [first, *rest]:
        job.result(timeout=120)
    stats = engine.stats()
    assert stats["max_batch_seen"] == 2 and stats["batches"] == 2 and stats["frames_encoded"] == 1
    engine.close()


def batch_of(engine, frame, texts):
    """Hold query 1 at its first stage, queue the others on the same frame, release:
    they join query 1 in one model call. Returns the jobs in query order."""
    first, release = held_first(engine, Request(frame=frame, text=texts[0]))
    rest = [engine.submit(Request(frame=frame, text=t)) for t in texts[1:]]
    release.set()
    return [first, *rest]


TEXTS = ("red circle", "blue square", "green", "the cat on the left")


def test_a_fault_inside_the_batched_call_fails_only_that_query(pipeline, image):
    """Query 2 makes the batched forward pass raise: it gets its error, and the
    other three get the answers they get alone (the batch is run again query by query)."""
    plan = FaultPlan.parse("exception:2")
    engine = Engine(pipeline, max_queue=8, hook=plan)
    jobs = batch_of(engine, Frame(image=image, key=4), TEXTS)
    with pytest.raises(RuntimeError, match="injected fault: query 2 raised inside the model"):
        jobs[1].result(timeout=60)
    for job, text in zip(jobs, TEXTS):
        if job is not jobs[1]:
            got, want = job.result(timeout=120), pipeline.segment(image, text=text)
            np.testing.assert_array_equal(got.mask, want.mask)
            assert (got.text, got.found) == (want.text, want.found)
    assert plan.calls[0] == ([1, 2, 3, 4], 1)  # the fault happened inside the batched call
    assert plan.calls[1:] == [([1], 1), ([2], 1), ([3], 1), ([4], 1)]
    stats = engine.stats()
    assert stats["batches_split"] == 1 and stats["succeeded"] == 3 and stats["failed"] == 1
    assert stats.get("oom_retries", 0) == 0
    engine.close()


def test_out_of_memory_in_a_batch_is_retried_at_batch_size_1(pipeline, image):
    """A batched call runs out of memory: every query is retried once, alone, one
    after another (RELIABILITY.md); query 3, out of memory again alone, reports it."""
    plan = FaultPlan.parse("oom:3x2")
    engine = Engine(pipeline, max_queue=8, hook=plan)
    jobs = batch_of(engine, Frame(image=image, key=6), TEXTS)
    with pytest.raises(OutOfMemory, match="retrying once at batch size 1"):
        jobs[2].result(timeout=60)
    for job in (jobs[0], jobs[1], jobs[3]):
        assert job.result(timeout=120).mask.shape == (60, 80)
    assert plan.calls == [([1, 2, 3, 4], 1), ([1], 2), ([2], 2), ([3], 2), ([4], 2)]
    stats = engine.stats()
    assert stats["oom_retries"] == 4 and stats["succeeded"] == 3 and stats["failed"] == 1
    engine.close()


def test_cancel_stops_a_long_generation_within_a_token(pipeline, image):
    """A region description generates token by token (greedy); each token takes
    0.4 s more (test plan, ignoring cancel). Cancelled at its first token, the
    query ends after that token, not after max_new_tokens."""
    plan = FaultPlan.parse("step:0.4")
    engine = Engine(pipeline, hook=plan)
    started = threading.Event()
    job = engine.submit(Request(frame=Frame(image=image), box=(5, 5, 40, 30)),
                        on_stage=lambda j, s: s == "generating" and started.set())
    assert started.wait(60)
    t = time.monotonic()
    job.cancel("stop now")
    with pytest.raises(Cancelled, match="stop now"):
        job.result(timeout=30)
    took = time.monotonic() - t
    # the prefix pass and at most two token passes (0.4 s each) run before the stop is seen,
    # of the 1 + max_new_tokens (8) the generation would take
    assert took < 1.6, f"the generation went on {took:.1f} s after cancel"
    engine.close()
    assert engine.wait_released(10)


def test_cancel_of_a_queued_job_frees_its_queue_place(pipeline, image):
    """Job.cancel and Engine.cancel are one: a queued job leaves the queue at once,
    so the next caller is not refused as busy."""
    engine = Engine(pipeline, max_queue=1)
    running, release = held_first(engine, Request(frame=Frame(image=image), text="red circle"))
    waiting = engine.submit(Request(frame=Frame(image=image), text="blue square"))
    assert waiting.cancel()
    with pytest.raises(Cancelled):
        waiting.result(timeout=0.5)
    assert engine.queue_depth == 0
    again = engine.submit(Request(frame=Frame(image=image), text="green"))  # not QueueFull
    release.set()
    assert again.result(timeout=60).mask.shape == (60, 80) and running.result(timeout=60)
    engine.close()


def test_close_answers_every_job_of_a_running_batch(pipeline, image):
    engine = Engine(pipeline, max_queue=8, hook=FaultPlan(hang=1.0))
    frame = Frame(image=image, key=5)
    first, release = held_first(engine, Request(frame=frame, text="red circle"))
    second = engine.submit(Request(frame=frame, text="blue square"))
    release.set()
    threading.Event().wait(0.3)  # both are in the (hanging) model call now
    engine.close(timeout=0.2, reason="deactivated")
    for job in (first, second):
        with pytest.raises(Cancelled, match="deactivated"):
            job.result(timeout=10)
    engine._worker.join(30)  # the late model call ends before the test does
    assert not engine._worker.is_alive()


def test_standing_answers_do_not_take_one_shot_places_and_are_overtaken(pipeline, image):
    """Standing queries (submit_standing) wait outside max_queue, within their own
    limit; a one-shot query submitted after them runs before them."""
    engine = Engine(pipeline, max_queue=1)
    try:
        first, release = held_first(engine, Request(frame=Frame(image=image, key=1), text="red circle"))
        standing = engine.submit_standing([Request(frame=Frame(image=image, key=2), text=t)
                                           for t in ("red circle", "blue square", "green circle")], limit=4)
        with pytest.raises(QueueFull, match="standing answers already wait"):
            engine.submit_standing([Request(frame=Frame(image=image, key=3), text="x")] * 2, limit=4)
        one_shot = engine.submit(Request(frame=Frame(image=image, key=4), text="yellow square"))  # a place is free
        assert engine.queue_position(one_shot) == 1  # ahead of the standing answers
        release.set()
        for job in [first, one_shot, *standing]:
            job.result(60)
        assert one_shot.finished <= min(j.started for j in standing)
        assert max(j.number for j in standing) - min(j.number for j in standing) == 2  # one batch
    finally:
        engine.close()


def test_a_fault_in_one_standing_query_fails_only_its_answer(pipeline, image):
    """Standing answers on one frame run as one batch; the second one's fault
    (inside the batched call) fails it alone."""
    plan = FaultPlan.parse("exception:2")
    engine = Engine(pipeline, max_queue=1, hook=plan)
    try:
        jobs = engine.submit_standing([Request(frame=Frame(image=image, key=9), text=t) for t in TEXTS[:3]], limit=8)
        with pytest.raises(RuntimeError, match="injected fault: query 2"):
            jobs[1].result(timeout=60)
        for job in (jobs[0], jobs[2]):
            assert job.result(timeout=60).mask.shape == image.shape[:2]
        assert plan.calls[0] == ([1, 2, 3], 1)
    finally:
        engine.close()
