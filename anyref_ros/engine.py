"""The inference engine between the model and the ROS node.

Plain Python (no ROS import), usable on its own::

    engine = Engine(AnyRefPipeline.from_pretrained("model/toy"), max_queue=4)
    frame = Frame(key=1, image=rgb)
    job = engine.submit(Request(frame=frame, text="red circle"))
    referral = job.result(timeout=30)
    engine.close()

What it does for the node:

* **one worker thread** runs every query, so callers (camera callbacks,
  services, actions) never wait for the network and the model is never used
  from two threads at once;
* a **bounded queue**: :meth:`Engine.submit` raises :class:`QueueFull` at
  once instead of letting requests pile up;
* a **per-frame cache** of encoded images (SAM embedding + CLIP features):
  several queries on the same camera frame pay the image encoders once;
* **stages** reported through a callback (for action feedback), **cancel**
  before or between stages, and **statistics** (per-stage latency, queue
  depth, cache hits) for diagnostics.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

STAGE_QUEUED = "queued"
STAGE_ENCODING_IMAGE = "encoding_image"
STAGE_GENERATING = "generating"
STAGE_DONE = "done"


class QueueFull(RuntimeError):
    """The engine's queue is full; the request was not accepted."""


class Cancelled(RuntimeError):
    """The job was cancelled before it finished."""


class EngineClosed(RuntimeError):
    """The engine is shut down and takes no more requests."""


@dataclass(frozen=True)
class Frame:
    """An RGB camera frame. ``key`` identifies it for the feature cache
    (None: never cached); ``meta`` is carried through untouched (the node
    keeps the ROS header there)."""

    image: np.ndarray
    key: Optional[int] = None
    meta: Any = None


@dataclass
class Request:
    """One query. ``box`` set: describe that region; otherwise segment what
    ``text`` / ``exemplar`` (+ ``exemplar_mask``) / ``audio`` point at."""

    frame: Frame
    text: Optional[str] = None
    exemplar: Optional[np.ndarray] = None
    exemplar_mask: Optional[np.ndarray] = None
    audio: Optional[np.ndarray] = None
    sample_rate: Optional[int] = None
    box: Optional[tuple[int, int, int, int]] = None
    refocus_lambda: Optional[float] = None  # None: the checkpoint's value

    @property
    def kind(self) -> str:
        return "describe" if self.box is not None else "segment"


@dataclass
class Job:
    """A submitted request: wait for it, cancel it, read its stage."""

    id: int
    request: Request
    on_stage: Optional[Callable[["Job", str], None]] = None
    submitted: float = field(default_factory=time.monotonic)
    stage: str = STAGE_QUEUED
    started: Optional[float] = None
    finished: Optional[float] = None
    timings: dict[str, float] = field(default_factory=dict)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _result: Any = None
    _error: Optional[BaseException] = None

    def cancel(self) -> bool:
        """Ask to stop; True if the job had not finished yet. A stage that is
        already running completes, then the job ends with :class:`Cancelled`."""
        self._cancel.set()
        return not self._done.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the job finishes or ``timeout`` passes; True if finished."""
        return self._done.wait(timeout)

    def result(self, timeout: Optional[float] = None):
        """The Referral; re-raises the job's error (ValueError for bad input,
        :class:`Cancelled`, ...); TimeoutError if not done within ``timeout``."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} not finished after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._result

    @property
    def latency(self) -> Optional[float]:
        """Seconds from submission to completion."""
        return None if self.finished is None else self.finished - self.submitted

    def _set_stage(self, stage: str) -> None:
        self.stage = stage
        if self.on_stage is not None:
            try:
                self.on_stage(self, stage)
            except Exception:  # a broken callback must not kill the worker
                pass


class Engine:
    """Runs queries on an ``AnyRefPipeline`` in one worker thread."""

    def __init__(self, pipeline, *, max_queue: int = 4, cache_frames: int = 2) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        self.pipeline = pipeline
        self.max_queue = int(max_queue)
        self.cache_frames = max(0, int(cache_frames))
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._cache: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self._ids = itertools.count(1)
        self._closed = False
        self._running: Optional[Job] = None
        self._stats = collections.Counter()
        self._stage_ms: dict[str, float] = {}
        self._worker = threading.Thread(target=self._run, name="anyref-engine", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ API
    def submit(self, request: Request, on_stage: Optional[Callable[[Job, str], None]] = None) -> Job:
        """Queue a request; raises :class:`QueueFull` when ``max_queue`` jobs wait."""
        with self._cond:
            if self._closed:
                raise EngineClosed("the engine is shut down")
            if len(self._queue) >= self.max_queue:
                self._stats["rejected"] += 1
                raise QueueFull(f"{len(self._queue)} queries are already waiting (max_queue={self.max_queue}); try again later")
            job = Job(id=next(self._ids), request=request, on_stage=on_stage)
            self._queue.append(job)
            self._stats["submitted"] += 1
            self._cond.notify()
        return job

    def cancel(self, job: Job) -> bool:
        """Cancel a job: a waiting one leaves the queue at once, a running one
        stops after its current stage. False if it had already finished."""
        with self._cond:
            waiting = job in self._queue
            if waiting:
                self._queue.remove(job)
        if not job.cancel():
            return False
        if waiting:
            self._finish(job, error=Cancelled(f"job {job.id} was cancelled while queued"))
        return True

    def queue_position(self, job: Job) -> int:
        """1-based position among waiting jobs; 0 once running or finished."""
        with self._cond:
            try:
                return self._queue.index(job) + 1
            except ValueError:
                return 0

    @property
    def queue_depth(self) -> int:
        with self._cond:
            return len(self._queue)

    def stats(self) -> dict[str, Any]:
        """Counters and the last latency of each stage in milliseconds."""
        with self._cond:
            out: dict[str, Any] = dict(self._stats)
            out["queue_depth"] = len(self._queue)
            out["busy"] = self._running is not None
            out["cached_frames"] = len(self._cache)
            out["stage_ms"] = dict(self._stage_ms)
        return out

    def close(self, timeout: float = 2.0) -> None:
        """Stop taking requests, cancel waiting ones, let the running one end."""
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in pending:
            job.cancel()
            self._finish(job, error=Cancelled("the engine shut down before this query ran"))
        self._worker.join(timeout)
        self._cache.clear()

    # --------------------------------------------------------------- worker
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    return
                job = self._queue.popleft()
                self._running = job
            try:
                self._execute(job)
            except BaseException as exc:  # noqa: BLE001 - reported through the job
                self._finish(job, error=exc)
            else:
                self._finish(job, result=job._result)
            finally:
                with self._cond:
                    self._running = None

    def _execute(self, job: Job) -> None:
        job.started = time.monotonic()
        req = job.request
        self._check_cancel(job)
        job._set_stage(STAGE_ENCODING_IMAGE)
        t = time.perf_counter()
        features = self._features(req.frame)
        job.timings["image_encoder"] = time.perf_counter() - t
        self._check_cancel(job)
        job._set_stage(STAGE_GENERATING)
        t = time.perf_counter()
        if req.kind == "describe":
            referral = self.pipeline.describe(features, req.box)
        else:
            referral = self.pipeline.segment(
                features,
                text=req.text,
                exemplar=req.exemplar,
                exemplar_mask=req.exemplar_mask,
                audio=req.audio,
                sample_rate=req.sample_rate,
                refocus_lambda=req.refocus_lambda,
            )
        job.timings["query"] = time.perf_counter() - t
        for name, seconds in getattr(referral, "timings", {}).items():
            if name != "image_encoder":
                job.timings[name] = seconds
        job._result = referral

    def _features(self, frame: Frame):
        if frame.key is not None:
            with self._cond:
                cached = self._cache.get(frame.key)
                if cached is not None:
                    self._cache.move_to_end(frame.key)
                    self._stats["cache_hits"] += 1
                    return cached
        features = self.pipeline.encode_image(frame.image)
        with self._cond:
            self._stats["frames_encoded"] += 1
            if frame.key is not None and self.cache_frames:
                self._cache[frame.key] = features
                while len(self._cache) > self.cache_frames:
                    self._cache.popitem(last=False)
        return features

    @staticmethod
    def _check_cancel(job: Job) -> None:
        if job.cancelled:
            raise Cancelled(f"job {job.id} was cancelled")

    def _finish(self, job: Job, result: Any = None, error: Optional[BaseException] = None) -> None:
        if job._done.is_set():
            return
        job._result, job._error = result, error
        job.finished = time.monotonic()
        with self._cond:
            if error is None:
                self._stats["succeeded"] += 1
                for name, seconds in job.timings.items():
                    self._stage_ms[name] = round(seconds * 1000.0, 3)
                self._stage_ms["total"] = round(job.latency * 1000.0, 3)
            elif isinstance(error, Cancelled):
                self._stats["cancelled"] += 1
            else:
                self._stats["failed"] += 1
        job._set_stage(STAGE_DONE)
        job._done.set()
