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
* a **per-frame cache** of encoded images (SAM embedding + CLIP features,
  and the language model's run over the prompt start every query shares):
  several queries on the same camera frame pay the image encoders once;
* **batches**: once a frame is encoded, the queries waiting for the same
  frame (up to ``max_batch`` in all) join the running one and go through
  ``AnyRefPipeline.segment_batch`` together (they overtake queries on other
  frames); each still gets its own result, error and cancel;
* **stages** reported through a callback (for action feedback), **cancel**
  before or between stages, and **statistics** (per-stage latency, queue
  depth, cache hits, batch sizes, the last internal error, consecutive
  failures) for diagnostics;
* **errors stay in their query**: an exception inside the model fails only
  the query that caused it. A batch whose model call raises is split: each
  of its queries runs again alone, so the faulty one gets its own error and
  the others their answers; the worker goes on with the next query;
* **out of memory** (``torch.OutOfMemoryError`` or a ``RuntimeError`` whose
  message says "out of memory"): the frame cache is dropped,
  ``torch.cuda.empty_cache()`` runs (when CUDA is available) and the
  queries of the failed call are retried once, at batch size 1, one after
  another; a query that runs out of memory again, alone, ends with
  :class:`OutOfMemory`, whose message says what to do;
* **stop means stop**: the model call gets a ``stop`` callable that the
  pipeline asks before every language-model pass, every generated token
  included, so a cancelled (or closed) query leaves the model within one
  token;
* :meth:`Engine.close` ends everything: waiting jobs are cancelled, the
  running one is cancelled (it stops within a token) and, if the model call
  has not returned within ``timeout``, finished at once with
  :class:`Cancelled` (the late result is discarded); the engine then drops
  the pipeline and the frame cache. The worker may still hold the model
  until that call returns: :meth:`Engine.wait_released` waits for it, and
  whoever loads the next model must call it first (the node does), so two
  models never coexist.

Test seam
---------
``Engine(..., hook=...)`` (TEST ONLY, never set by the node): a callable
given a :class:`ModelCall` (the jobs of one model call, its attempt and its
``stop``) that returns a context manager entered around that model call.
The tests' fault plans (``tests/faults.py``) use it to raise errors and
out-of-memory inside the batched call and to slow generations down; nothing
reads it from the environment, and an engine with a hook says so in its
``stats()`` (``test_hook``).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Optional

import numpy as np

# The stages a job goes through (the Refer action's feedback stages).
STAGE_QUEUED = "queued"
STAGE_ENCODING_IMAGE = "encoding_image"
STAGE_ENCODING_REFERENCE = "encoding_reference"
STAGE_GENERATING = "generating"
STAGE_DECODING_MASK = "decoding_mask"
STAGE_DONE = "done"


class QueueFull(RuntimeError):
    """The engine's queue is full; the request was not accepted."""


class Cancelled(RuntimeError):
    """The job was cancelled before it finished."""


class EngineClosed(RuntimeError):
    """The engine is shut down and takes no more requests."""


class OutOfMemory(RuntimeError):
    """The query ran out of (GPU) memory, also after freeing cached frames and
    retrying once."""


#: Message of the job that was running when the engine was closed.
CLOSED_WHILE_RUNNING = "the node was deactivated while this query ran"
OOM_ADVICE = ("send smaller images (the node's max_image_pixels), load the model in bfloat16 or "
              "float16 (dtype), or run it on another device (device)")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's OutOfMemoryError and RuntimeErrors saying "out of memory"."""
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def _drop_tracebacks(exc: Optional[BaseException]) -> None:
    """Clear the tracebacks of ``exc`` and the errors chained to it (bounded)."""
    for _ in range(16):
        if exc is None:
            return
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__


def _positive(n: int) -> int:
    if n < 1:
        raise ValueError
    return n


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
    _finishing: bool = field(default=False, repr=False)
    number: int = 0  # order in which the worker started it (1, 2, ...; 0 while queued)
    standing: bool = False  # a standing query's answer on one frame (see Engine.submit_standing)
    partial_text: str = ""  # the answer text generated so far (greedy decoding)
    _cancel_reason: Optional[str] = field(default=None, repr=False)
    _engine: Optional["Engine"] = field(default=None, repr=False)

    def cancel(self, reason: Optional[str] = None) -> bool:
        """Cancel the job (the one way to do it; the same as ``Engine.cancel``):
        a queued job leaves the queue at once, freeing its place, and ends
        with :class:`Cancelled` (whose message is ``reason`` if given); a
        running one stops before its next language-model pass or token.
        True if the job had not finished yet."""
        if self._engine is not None:
            return self._engine.cancel(self, reason)
        self._flag_cancel(reason)
        return not self._done.is_set()

    def _flag_cancel(self, reason: Optional[str]) -> None:
        if reason is not None and self._cancel_reason is None:
            self._cancel_reason = reason
        self._cancel.set()

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

    def _set_stage(self, stage: str, text: Optional[str] = None) -> None:
        if stage == self.stage and (text is None or text == self.partial_text):
            return
        self.stage = stage
        if text is not None:
            self.partial_text = text
        if self.on_stage is not None:
            try:
                self.on_stage(self, stage)
            except Exception:  # a broken callback must not kill the worker
                pass


@dataclass
class ModelCall:
    """One call of the model, as the test-only ``hook`` sees it."""

    pipeline: Any
    jobs: list[Job]
    attempt: int  # 2: the retry after an out-of-memory error
    stop: Callable[[], bool]  # True once every job of the call is cancelled


class Engine:
    """Runs queries on an ``AnyRefPipeline`` in one worker thread.

    ``max_batch``: most queries on one frame answered in one batch (1: one
    at a time).  ``hook``: TEST ONLY (module docstring).
    """

    def __init__(self, pipeline, *, max_queue: int = 4, cache_frames: int = 2, max_batch: int = 8,
                 hook: Optional[Callable[[ModelCall], ContextManager]] = None) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.pipeline = pipeline
        self.max_queue = int(max_queue)
        self.max_batch = int(max_batch)
        self.cache_frames = max(0, int(cache_frames))
        self.hook = hook
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._cache: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self._ids = itertools.count(1)
        self._queries = 0  # queries started by the worker (numbers the fault plan uses)
        self._closed = False
        self._running: list[Job] = []
        self._max_batch_seen = 0
        self._stats = collections.Counter()
        self._stage_ms: dict[str, float] = {}
        self._last_error: Optional[str] = None
        self._consecutive_failures = 0
        self._worker = threading.Thread(target=self._run, name="anyref-engine", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ API
    def submit(self, request: Request, on_stage: Optional[Callable[[Job, str], None]] = None) -> Job:
        """Queue a request; raises :class:`QueueFull` when ``max_queue`` jobs wait.
        It goes ahead of queued standing work (:meth:`submit_standing`): a
        one-shot query is never starved by standing queries."""
        with self._cond:
            if self._closed:
                raise EngineClosed("the engine is shut down")
            waiting = sum(not j.standing for j in self._queue)
            if waiting >= self.max_queue:
                self._stats["rejected"] += 1
                raise QueueFull(f"{waiting} queries are already waiting (max_queue={self.max_queue}); try again later")
            job = Job(id=next(self._ids), request=request, on_stage=on_stage, _engine=self)
            first_standing = next((i for i, j in enumerate(self._queue) if j.standing), len(self._queue))
            self._queue.insert(first_standing, job)
            self._stats["submitted"] += 1
            self._cond.notify()
        return job

    def submit_standing(self, requests: list[Request], limit: int) -> list[Job]:
        """Queue the answers of standing queries on one frame, together (they run
        as one batch, up to ``max_batch``); they do not count against
        ``max_queue`` but at most ``limit`` standing jobs wait at once, and
        one-shot queries overtake them. Raises :class:`QueueFull` over the limit."""
        with self._cond:
            if self._closed:
                raise EngineClosed("the engine is shut down")
            waiting = sum(j.standing for j in self._queue)
            if waiting + len(requests) > limit:
                self._stats["rejected"] += len(requests)
                raise QueueFull(f"{waiting} standing answers already wait (limit {limit})")
            jobs = [Job(id=next(self._ids), request=r, standing=True, _engine=self) for r in requests]
            self._queue.extend(jobs)
            self._stats["submitted"] += len(jobs)
            self._cond.notify()
        return jobs

    def cancel(self, job: Job, reason: Optional[str] = None) -> bool:
        """Cancel a job: a waiting one leaves the queue at once (its place is
        free for the next submit), a running one stops before its next
        language-model pass or generated token. False if it had already finished."""
        with self._cond:
            waiting = job in self._queue
            if waiting:
                self._queue.remove(job)
        job._flag_cancel(reason)
        if job.done():
            return False
        if waiting:
            self._finish(job, error=Cancelled(reason or f"job {job.id} was cancelled while queued"))
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
        """Counters (submitted, succeeded, failed, cancelled, rejected,
        frames_encoded, cache_hits, oom_retries: queries retried after out of
        memory, batches: model calls, batched_queries: queries in them,
        batches_split: batched calls that raised and were run again query by
        query), ``mean_batch`` and
        ``max_batch_seen`` (queries per model call), ``prefix_built``,
        ``prefix_used``, ``prefix_missed`` (the pipeline's shared-prompt KV
        cache: frames whose prompt start ran, queries that continued from it,
        queries whose prompt did not start with it), the last latency of each
        stage in milliseconds, and for diagnostics ``last_error`` (type and
        message of the last error that was not bad input, or None),
        ``consecutive_failures`` (such errors since the last success) and
        ``test_hook`` (True when a test seam is installed: never in production)."""
        with self._cond:
            out: dict[str, Any] = dict(self._stats)
            out["queue_depth"] = len(self._queue)
            out["busy"] = bool(self._running)
            batches = self._stats.get("batches", 0)
            out["mean_batch"] = round(self._stats.get("batched_queries", 0) / batches, 3) if batches else 0.0
            out["max_batch_seen"] = self._max_batch_seen
            counters = getattr(self.pipeline, "counters", None)
            if isinstance(counters, dict):
                out.update({k: int(v) for k, v in counters.items()})
            out["cached_frames"] = len(self._cache)
            out["stage_ms"] = dict(self._stage_ms)
            out["last_error"] = self._last_error
            out["consecutive_failures"] = self._consecutive_failures
            out["closed"] = self._closed
            out["test_hook"] = self.hook is not None
        return out

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float = 2.0, reason: str = CLOSED_WHILE_RUNNING) -> None:
        """Stop taking requests and end every job within about ``timeout`` s.

        Waiting jobs end with :class:`Cancelled` at once. The running job is
        cancelled (the model call stops before its next pass or token); if
        the worker has not finished it within ``timeout``, it is finished here
        with ``Cancelled(reason)`` so its caller is answered now, and whatever
        the model call returns later is discarded. Then the engine drops the
        pipeline (``self.pipeline`` becomes None) and the frame cache; a model
        call still running keeps the model alive until it returns: see
        :meth:`wait_released`.
        """
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            running = list(self._running)
            self._cond.notify_all()
        for job in pending:
            job._flag_cancel(None)
            self._finish(job, error=Cancelled("the engine shut down before this query ran"))
        for job in running:
            job._flag_cancel(reason)
        if self._worker is not threading.current_thread():
            self._worker.join(max(0.0, float(timeout)))
        for job in running:
            if not job.done():
                self._finish(job, error=Cancelled(reason))
        with self._cond:
            self._cache.clear()
            self.pipeline = None

    def wait_released(self, timeout: Optional[float] = None) -> bool:
        """After :meth:`close`: wait until the worker has let go of the model
        (its running model call returned); True once it has. Load the next
        model only then, or two models are in memory together."""
        if self._worker is threading.current_thread():
            return False
        self._worker.join(timeout)
        return not self._worker.is_alive()

    @property
    def released(self) -> bool:
        """Closed, and the worker holds no model any more."""
        return self._closed and not self._worker.is_alive()

    # --------------------------------------------------------------- worker
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed and not self._queue:
                    return
                job = self._queue.popleft()
                self._start(job)
                pipeline = self.pipeline
            try:
                self._execute(job, pipeline)
            except BaseException as exc:  # noqa: BLE001 - reported through the jobs
                _drop_tracebacks(exc)  # their frames would keep tensors (and the model) alive
                for running in list(self._running):
                    self._finish(running, error=exc)
            finally:
                pipeline = None  # a closed engine's model is freed once this call is over
                with self._cond:
                    self._running = []

    def _start(self, job: Job) -> None:
        """Mark ``job`` as running (call with the lock held)."""
        self._running.append(job)
        self._queries += 1
        job.number = self._queries
        job.started = time.monotonic()

    def _execute(self, first: Job, pipeline) -> None:
        """Run ``first`` and the jobs that join it (same frame); finish each."""
        if pipeline is None:
            self._finish(first, error=Cancelled(first._cancel_reason or CLOSED_WHILE_RUNNING))
            return
        self._run_jobs([first], pipeline, attempt=1, join=True)

    def _run_jobs(self, jobs: list[Job], pipeline, attempt: int, join: bool = False) -> None:
        """One model call for ``jobs`` (same frame; with ``join``, the jobs
        waiting for that frame join once it is encoded), every job finished;
        a failed call goes to :meth:`_failed`."""
        jobs = self._live(jobs)
        if not jobs:
            return
        try:
            features = self._encode(jobs, pipeline)
            if join and self.max_batch > len(jobs):
                for job in self._take_same_frame(jobs[0].request.frame, self.max_batch - len(jobs)):
                    job._set_stage(STAGE_ENCODING_IMAGE)
                    job.timings["image_encoder"] = 0.0
                    jobs.append(job)
                jobs = self._live(jobs)
            results = self._call(jobs, features, pipeline, attempt) if jobs else []
        except Exception as exc:  # noqa: BLE001 - the whole call failed: find whose fault it is
            features = None  # nothing of the failed call stays referenced while memory is freed
            self._failed(jobs, exc, pipeline, attempt)
            return
        for job, result in zip(jobs, results):
            if isinstance(result, BaseException):
                _drop_tracebacks(result)
                self._finish(job, error=result)
            else:
                self._finish(job, result=result)

    def _failed(self, jobs: list[Job], exc: BaseException, pipeline, attempt: int) -> None:
        """The model call of ``jobs`` raised ``exc``. Cancelled jobs end
        cancelled; one job gets ``exc`` (out of memory: retried once first);
        a batch is split, each job run alone (after out of memory: at once as
        the retry), so only the faulty query fails."""
        line, oom = _first_line(exc), is_out_of_memory(exc)
        _drop_tracebacks(exc)
        live = []
        for job in jobs:
            if job.cancelled:  # also when the call ended because it was asked to stop
                self._finish(job, error=Cancelled(job._cancel_reason or f"job {job.id} was cancelled"))
            else:
                live.append(job)
        if not live:
            return
        if oom and attempt >= 2:
            exc = None
            self._release_memory()  # what the retry cached goes too: the next query starts clean
            for job in live:
                self._finish(job, error=OutOfMemory(
                    f"out of memory while running this query, also after freeing cached frames and retrying "
                    f"once at batch size 1 ({line}); what to do: {OOM_ADVICE}"))
            return
        if not oom and len(jobs) == 1:
            self._finish(live[0], error=exc)
            return
        exc = None  # no reference to the error's tensors while memory is freed
        if oom:
            self._release_memory()
            attempt = 2
            with self._cond:
                self._stats["oom_retries"] += len(live)
        else:
            with self._cond:
                self._stats["batches_split"] += 1
        for job in live:
            job.timings.pop("image_encoder", None)
            self._run_jobs([job], pipeline, attempt)

    def _live(self, jobs: list[Job]) -> list[Job]:
        """The jobs not cancelled; the cancelled ones are finished."""
        live = []
        for job in jobs:
            if job.cancelled:
                self._finish(job, error=Cancelled(job._cancel_reason or f"job {job.id} was cancelled"))
            else:
                live.append(job)
        return live

    def _encode(self, jobs: list[Job], pipeline):
        """The frame's features (cached per frame key)."""
        for job in jobs:
            job._set_stage(STAGE_ENCODING_IMAGE)
        t = time.perf_counter()
        features = self._features(jobs[0].request.frame, pipeline)
        for job in jobs:
            job.timings["image_encoder"] = time.perf_counter() - t
        return features

    def _call(self, jobs: list[Job], features, pipeline, attempt: int) -> list[Any]:
        """One ``segment_batch`` call: a result or a bad-input error per job."""
        with self._cond:
            self._stats["batches"] += 1
            self._stats["batched_queries"] += len(jobs)
            self._max_batch_seen = max(self._max_batch_seen, len(jobs))

        def stop() -> bool:
            return all(job.cancelled for job in jobs)

        def progress(index: int, stage: str, text: str) -> None:
            jobs[index]._set_stage(stage, text)

        hook = self.hook(ModelCall(pipeline, list(jobs), attempt, stop)) if self.hook else contextlib.nullcontext()
        t = time.perf_counter()
        with hook:
            results = pipeline.segment_batch(features, [_arguments(job.request) for job in jobs],
                                             return_exceptions=True, stop=stop, progress=progress)
        seconds = time.perf_counter() - t
        for job, result in zip(jobs, results):
            if isinstance(result, BaseException):
                continue
            job.timings["query"] = seconds
            for name, value in getattr(result, "timings", {}).items():
                if name != "image_encoder":
                    job.timings[name] = value
        return results

    def _take_same_frame(self, frame: Frame, limit: int) -> list[Job]:
        """Remove from the queue (and start) up to ``limit`` waiting jobs on ``frame``."""
        taken: list[Job] = []
        with self._cond:
            if self._closed:
                return taken
            for job in list(self._queue):
                if len(taken) >= limit:
                    break
                other = job.request.frame
                if other is frame or (frame.key is not None and other.key == frame.key):
                    self._queue.remove(job)
                    self._start(job)
                    taken.append(job)
            if taken and frame.key is not None:
                self._stats["cache_hits"] += len(taken)
        return taken

    def _release_memory(self) -> None:
        """After an out-of-memory error: drop cached frames, return CUDA's cache."""
        with self._cond:
            self._cache.clear()
        torch = sys.modules.get("torch")
        try:
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - best effort
            pass

    def _features(self, frame: Frame, pipeline):
        if frame.key is not None:
            with self._cond:
                cached = self._cache.get(frame.key)
                if cached is not None:
                    self._cache.move_to_end(frame.key)
                    self._stats["cache_hits"] += 1
                    return cached
        features = pipeline.encode_image(frame.image)
        with self._cond:
            self._stats["frames_encoded"] += 1
            if frame.key is not None and self.cache_frames and not self._closed:
                self._cache[frame.key] = features
                while len(self._cache) > self.cache_frames:
                    self._cache.popitem(last=False)
        return features

    def _finish(self, job: Job, result: Any = None, error: Optional[BaseException] = None) -> bool:
        """Complete ``job`` once; False (and nothing changes) if it already was."""
        with self._cond:
            if job._finishing:
                return False
            job._finishing = True
            job._result, job._error = result, error
            job.finished = time.monotonic()
            if error is None:
                self._stats["succeeded"] += 1
                self._consecutive_failures = 0
                for name, seconds in job.timings.items():
                    self._stage_ms[name] = round(seconds * 1000.0, 3)
                self._stage_ms["total"] = round(job.latency * 1000.0, 3)
            elif isinstance(error, Cancelled):
                self._stats["cancelled"] += 1
            else:
                self._stats["failed"] += 1
                if not isinstance(error, ValueError):  # bad input is the caller's, not a fault
                    self._consecutive_failures += 1
                    self._last_error = f"{type(error).__name__}: {str(error)[:500]}"
        job._set_stage(STAGE_DONE)
        job._done.set()
        return True


def _arguments(request: Request) -> dict[str, Any]:
    """``AnyRefPipeline.segment_batch`` arguments of a request."""
    if request.kind == "describe":
        return {"box": request.box}
    return {"text": request.text, "exemplar": request.exemplar, "exemplar_mask": request.exemplar_mask,
            "audio": request.audio, "sample_rate": request.sample_rate,
            "refocus_lambda": request.refocus_lambda}
