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
* **errors stay in their job**: an exception inside the model fails that
  query (its message on the job) and the worker goes on with the next one;
* **out of memory** (``torch.OutOfMemoryError`` or a ``RuntimeError`` whose
  message says "out of memory"): the frame cache is dropped,
  ``torch.cuda.empty_cache()`` runs (when CUDA is available) and the query
  is retried once; a second failure ends the job with :class:`OutOfMemory`,
  whose message says what to do;
* :meth:`Engine.close` ends everything: waiting jobs are cancelled, the
  running one is marked cancelled and, if the model call has not returned
  within ``timeout``, finished at once with :class:`Cancelled` (the late
  result is discarded); the engine then drops the pipeline and the frame
  cache so that a node that is deactivated and activated again during a
  long generation does not keep two models.

Fault injection (TEST ONLY)
---------------------------
``Engine(..., faults=FaultPlan.parse("exception:2,slow:0.5"))``, or the
environment variable ``ANYREF_TEST_FAULTS`` (read only when it is set, when
an engine is created; the node's tests set it for real node processes).
Comma-separated items, queries numbered from 1 in the order the worker
starts them (a node's warm-up query is query 1):

* ``exception:N``: query N raises ``RuntimeError`` inside the model call
  (only that query fails, also when it was batched with others);
* ``oom:N`` / ``oom:NxK``: the first K (default 1) attempts of query N
  raise an out-of-memory error inside the model call (K=1: the retry
  succeeds; K>=2: the job reports :class:`OutOfMemory`);
* ``slow:S``: every query spends S more seconds in the model call, in small
  sleeps that stop as soon as the job is cancelled;
* ``hang:S``: every query blocks S seconds in the model call, ignoring
  cancel (a generation that cannot be interrupted).

Never set it in production: it makes queries fail on purpose.
"""

from __future__ import annotations

import collections
import itertools
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

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


class OutOfMemory(RuntimeError):
    """The query ran out of (GPU) memory, also after freeing cached frames and
    retrying once."""


#: Message of the job that was running when the engine was closed.
CLOSED_WHILE_RUNNING = "the node was deactivated while this query ran"
#: Environment variable with a test-only :class:`FaultPlan` (see the module docstring).
FAULTS_ENV = "ANYREF_TEST_FAULTS"
OOM_ADVICE = ("send smaller images (the node's max_image_pixels), load the model in bfloat16 or "
              "float16 (dtype), or run it on another device (device)")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's OutOfMemoryError and RuntimeErrors saying "out of memory"."""
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@dataclass
class FaultPlan:
    """Test-only faults injected inside the model call (module docstring)."""

    exception: frozenset = frozenset()  # query numbers that raise
    oom: Mapping[int, int] = field(default_factory=dict)  # query number -> attempts that run out of memory
    slow: float = 0.0  # extra seconds per query, interrupted by cancel
    hang: float = 0.0  # seconds per query that ignore cancel

    _SYNTAX = "expected comma-separated exception:N, oom:N, oom:NxK, slow:SECONDS, hang:SECONDS"

    @classmethod
    def parse(cls, text: str) -> "FaultPlan":
        exception, oom, slow, hang = set(), {}, 0.0, 0.0
        for item in filter(None, (part.strip() for part in re.split(r"[,;\s]+", text))):
            kind, _, arg = item.partition(":")
            try:
                if kind == "exception":
                    exception.add(_positive(int(arg)))
                elif kind == "oom":
                    query, _, times = arg.partition("x")
                    oom[_positive(int(query))] = _positive(int(times)) if times else 1
                elif kind in ("slow", "hang"):
                    seconds = float(arg)
                    if not 0 <= seconds < 3600:
                        raise ValueError
                    slow, hang = (seconds, hang) if kind == "slow" else (slow, seconds)
                else:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{FAULTS_ENV}: cannot read {item!r}; {cls._SYNTAX}") from None
        return cls(exception=frozenset(exception), oom=oom, slow=slow, hang=hang)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Optional["FaultPlan"]:
        """The plan in ``ANYREF_TEST_FAULTS``; None when it is unset or empty."""
        text = environ.get(FAULTS_ENV, "")
        return cls.parse(text) if text.strip() else None

    def inject(self, job: "Job", query: int, attempt: int) -> None:
        """Called inside the model call of ``query`` (1-based), ``attempt`` 1 or 2."""
        if self.slow > 0:
            end = time.monotonic() + self.slow
            while time.monotonic() < end:
                Engine._check_cancel(job)
                time.sleep(min(0.02, max(0.0, end - time.monotonic())))
        if self.hang > 0:
            time.sleep(self.hang)
        if query in self.exception:
            raise RuntimeError(f"injected fault: query {query} raised inside the model ({FAULTS_ENV})")
        if attempt <= self.oom.get(query, 0):
            import torch

            oom_type = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
            raise oom_type(f"CUDA out of memory (injected fault: query {query}, "
                           f"attempt {attempt}, {FAULTS_ENV})")


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
    _number: int = field(default=0, repr=False)  # order in which the worker started it (fault plans)
    _cancel_reason: Optional[str] = field(default=None, repr=False)

    def cancel(self, reason: Optional[str] = None) -> bool:
        """Ask to stop; True if the job had not finished yet. A stage that is
        already running completes, then the job ends with :class:`Cancelled`
        (whose message is ``reason`` if given)."""
        if reason is not None and self._cancel_reason is None:
            self._cancel_reason = reason
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
    """Runs queries on an ``AnyRefPipeline`` in one worker thread.

    ``max_batch``: most queries on one frame answered in one batch (1: one
    at a time).  ``faults``: a test-only :class:`FaultPlan`; None reads
    ``ANYREF_TEST_FAULTS`` if it is set (module docstring).
    """

    def __init__(self, pipeline, *, max_queue: int = 4, cache_frames: int = 2, max_batch: int = 8,
                 faults: Optional[FaultPlan] = None) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.pipeline = pipeline
        self.max_queue = int(max_queue)
        self.max_batch = int(max_batch)
        self.cache_frames = max(0, int(cache_frames))
        self.faults = faults if faults is not None else FaultPlan.from_env()
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
        """Counters (submitted, succeeded, failed, cancelled, rejected,
        frames_encoded, cache_hits, oom_retries, batches: model calls,
        batched_queries: queries in them), ``mean_batch`` and
        ``max_batch_seen`` (queries per model call), ``prefix_built``,
        ``prefix_used``, ``prefix_missed`` (the pipeline's shared-prompt KV
        cache: frames whose prompt start ran, queries that continued from it,
        queries whose prompt did not start with it), the last latency of each
        stage in milliseconds, and for diagnostics ``last_error`` (type and
        message of the last error that was not bad input, or None) and
        ``consecutive_failures`` (such errors since the last success)."""
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
        return out

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float = 2.0, reason: str = CLOSED_WHILE_RUNNING) -> None:
        """Stop taking requests and end every job within about ``timeout`` s.

        Waiting jobs end with :class:`Cancelled` at once. The running job is
        marked cancelled (it stops at its next stage boundary); if the worker
        has not finished it within ``timeout``, it is finished here with
        ``Cancelled(reason)`` so its caller is answered now, and whatever the
        model call returns later is discarded. Then the engine drops the
        pipeline (``self.pipeline`` becomes None) and the frame cache; a model
        call still running keeps the model alive only until it returns.
        """
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            running = list(self._running)
            self._cond.notify_all()
        for job in pending:
            job.cancel()
            self._finish(job, error=Cancelled("the engine shut down before this query ran"))
        for job in running:
            job.cancel(reason)
        if self._worker is not threading.current_thread():
            self._worker.join(max(0.0, float(timeout)))
        for job in running:
            if not job.done():
                self._finish(job, error=Cancelled(reason))
        with self._cond:
            self._cache.clear()
            self.pipeline = None

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
        job._number = self._queries
        job.started = time.monotonic()

    def _execute(self, first: Job, pipeline) -> None:
        """Run ``first`` and the jobs that join it (same frame), finish each;
        on out-of-memory free what can be freed and retry those jobs once."""
        if pipeline is None:
            self._finish(first, error=Cancelled(first._cancel_reason or CLOSED_WHILE_RUNNING))
            return
        jobs, failures = [first], {}
        for attempt in (1, 2):
            outcomes = self._attempt(jobs, attempt, pipeline)
            jobs = []
            for job, outcome in outcomes:
                if isinstance(outcome, BaseException) and is_out_of_memory(outcome):
                    failures[job.id] = _first_line(outcome)
                    jobs.append(job)
                elif isinstance(outcome, BaseException):
                    _drop_tracebacks(outcome)
                    self._finish(job, error=outcome)
                else:
                    self._finish(job, result=outcome)
            outcomes = outcome = None  # no reference to the error's tensors while memory is freed
            if not jobs:
                return
            self._release_memory()
            if attempt == 1:
                with self._cond:
                    self._stats["oom_retries"] += len(jobs)
        for job in jobs:
            self._finish(job, error=OutOfMemory(
                f"out of memory while running this query, also after freeing cached frames and retrying "
                f"once ({failures[job.id]}); what to do: {OOM_ADVICE}"))

    def _attempt(self, jobs: list[Job], attempt: int, pipeline) -> list[tuple[Job, Any]]:
        """One try of ``jobs`` (same frame): their results or errors.  On the
        first try, the queries waiting for the same frame join once it is encoded."""
        outcomes: list[tuple[Job, Any]] = []
        live = []
        for job in jobs:
            if job.cancelled:
                outcomes.append((job, Cancelled(job._cancel_reason or f"job {job.id} was cancelled")))
                continue
            live.append(job)
            job._set_stage(STAGE_ENCODING_IMAGE)
        if not live:
            return outcomes
        frame = live[0].request.frame
        t = time.perf_counter()
        try:
            features = self._features(frame, pipeline)
        except Exception as exc:  # noqa: BLE001 - every job of this frame gets it
            outcomes.extend((job, exc) for job in live)
            return outcomes
        for job in live:
            job.timings["image_encoder"] = time.perf_counter() - t
        if attempt == 1 and self.max_batch > len(live):
            for job in self._take_same_frame(frame, self.max_batch - len(live)):
                job._set_stage(STAGE_ENCODING_IMAGE)
                job.timings["image_encoder"] = 0.0
                live.append(job)
        ready = []
        for job in live:
            try:
                self._check_cancel(job)
                job._set_stage(STAGE_GENERATING)
                if self.faults is not None:
                    self.faults.inject(job, job._number, attempt)
            except Exception as exc:  # noqa: BLE001 - that job's own outcome
                outcomes.append((job, exc))
            else:
                ready.append(job)
        if not ready:
            return outcomes
        with self._cond:
            self._stats["batches"] += 1
            self._stats["batched_queries"] += len(ready)
            self._max_batch_seen = max(self._max_batch_seen, len(ready))
        t = time.perf_counter()
        try:
            if len(ready) == 1:
                results = [self._call(pipeline, features, ready[0].request)]
            else:
                results = pipeline.segment_batch(features, [_arguments(job.request) for job in ready],
                                                 return_exceptions=True)
        except Exception as exc:  # noqa: BLE001 - the whole batch failed
            results = [exc] * len(ready)
        seconds = time.perf_counter() - t
        for job, result in zip(ready, results):
            outcomes.append((job, result))
            if isinstance(result, BaseException):
                continue
            job.timings["query"] = seconds
            for name, value in getattr(result, "timings", {}).items():
                if name != "image_encoder":
                    job.timings[name] = value
        return outcomes

    @staticmethod
    def _call(pipeline, features, request: Request) -> Any:
        if request.kind == "describe":
            return pipeline.describe(features, request.box)
        return pipeline.segment(features, **_arguments(request))

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

    @staticmethod
    def _check_cancel(job: Job) -> None:
        if job.cancelled:
            raise Cancelled(job._cancel_reason or f"job {job.id} was cancelled")

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
    """``AnyRefPipeline.segment``/``segment_batch`` keyword arguments of a request."""
    if request.kind == "describe":
        return {"box": request.box}
    return {"text": request.text, "exemplar": request.exemplar, "exemplar_mask": request.exemplar_mask,
            "audio": request.audio, "sample_rate": request.sample_rate,
            "refocus_lambda": request.refocus_lambda}
