"""The model behind the node: checked cheaply on activate, loaded in a thread of
its own, released on deactivate.

States: ``inactive`` (no model; ``failure`` says why when a load failed),
``loading`` (a loader thread runs: ``stage`` and ``seconds`` say how far),
``ready`` (the engine answers). Every activation bumps ``generation``; a load
or a query from an older generation never installs or answers anything.
Two models never coexist: loads run one at a time (a deactivate -> activate
during a load waits for the old load to finish and discards it), and a load
starts only once every engine released before it has let go of its model
(:meth:`Engine.wait_released`: the running model call stops within one
generated token; one that ignores stop is waited for, with the stage saying
so).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from anyref_ros import engine as eng
from anyref_ros import ros_env

from .support import NotYet, Refused


@dataclass(frozen=True)
class LoadSettings:
    checkpoint: str
    device: Optional[str]
    dtype: Optional[str]
    max_queue: int
    frame_cache: int
    warmup: bool
    cpu_threads: int = 0
    max_batch: int = 8
    quantization: Optional[str] = None  # None, "8bit" or "4bit" (bitsandbytes)
    compile: bool = False


class ModelSlot:
    """Holds the engine; see the module docstring. ``on_failure(generation,
    reason)`` is called from the loader thread when a load fails."""

    def __init__(self, logger, on_failure: Callable[[int, str], None]) -> None:
        self._logger = logger
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load at a time
        self.engine: Optional[eng.Engine] = None
        self.state = "inactive"
        self.stage = ""
        self.failure = ""  # why the last load failed ("" after a success)
        self.device = "none"
        self.generation = 0
        self._started = 0.0
        self.load_seconds = 0.0  # duration of the last successful load
        self._retired: list[eng.Engine] = []  # closed engines whose worker may still hold a model

    # ----------------------------------------------------------------- control
    def expect_start(self) -> None:
        """Autostart will configure and activate: answer "loading" from now on."""
        with self._lock:
            self.state, self.stage, self.failure = "loading", "starting up (configure, activate)", ""
            self._started = time.monotonic()

    def fail(self, reason: str) -> None:
        """A transition failed before any load started: inactive, and why."""
        with self._lock:
            self.generation += 1
            self.state, self.stage, self.failure = "inactive", "", reason

    def start(self, settings: LoadSettings) -> None:
        """Check the checkpoint (raises ValueError/FileNotFoundError at once),
        then load it in a thread; returns immediately."""
        source = resolve_checkpoint(settings.checkpoint)
        check_checkpoint_files(source)
        with self._lock:
            self.generation += 1
            gen = self.generation
            if self.state != "loading":  # else the clock runs from the start of autostart
                self._started = time.monotonic()
            self.state, self.stage, self.failure = "loading", "waiting for the previous load", ""
        threading.Thread(target=self._load, args=(gen, source, settings), name="anyref-loader", daemon=True).start()

    def release(self, timeout: float = 1.0) -> None:
        """Stop any running load from installing its model, cancel queued and
        running queries (they answer at once) and free the model."""
        with self._lock:
            self.generation += 1
            engine, self.engine = self.engine, None
            self.state, self.stage, self.device = "inactive", "", "none"
        if engine is not None:
            engine.close(timeout=timeout)  # every caller answered within ``timeout``
            if not engine.wait_released(0):
                with self._lock:  # the next load waits for it (see _wait_for_retired)
                    self._retired.append(engine)
            del engine
            _free_memory()

    # ------------------------------------------------------------------ queries
    @property
    def seconds(self) -> float:
        return time.monotonic() - self._started if self.state == "loading" else 0.0

    def require(self, node_name: str) -> tuple[eng.Engine, int]:
        """The engine and its generation, or :class:`Refused` saying why there is none."""
        with self._lock:
            engine, state, gen = self.engine, self.state, self.generation
        if state == "ready" and engine is not None:
            return engine, gen
        if state == "loading":
            raise NotYet(f"loading the model ({self.seconds:.1f} s so far, {self.stage}); ask again in a moment")
        why = self.failure or "check its log for why the model did not load"
        raise Refused(f"the node is not active ({why}); activate it with "
                      f"`ros2 lifecycle set {node_name} activate`")

    # ------------------------------------------------------------------ loader
    def _set_stage(self, gen: int, stage: str) -> bool:
        with self._lock:
            if gen != self.generation:
                return False
            self.stage = stage
            return True

    def _wait_for_retired(self, gen: int) -> None:
        """Until every released engine's worker has let go of its model."""
        with self._lock:
            retired, self._retired = self._retired, []
        t = time.monotonic()
        for engine in retired:
            while not engine.wait_released(0.25):
                self._set_stage(gen, "waiting for the previous model to be released (its running call "
                                     f"has not stopped for {time.monotonic() - t:.1f} s)")
        if retired:
            _free_memory()
            self._logger.info(f"the previous model was released {time.monotonic() - t:.2f} s after the wait began")

    def _load(self, gen: int, source: str, s: LoadSettings) -> None:
        with self._load_lock:
            engine = None
            try:
                self._wait_for_retired(gen)
                if not self._set_stage(gen, "importing torch"):
                    return
                import torch

                from anyref_ros.model import AnyRefPipeline

                if not self._set_stage(gen, f"loading {source}"):
                    return
                t = time.monotonic()
                pipeline = AnyRefPipeline.from_pretrained(
                    source, device=s.device, dtype=s.dtype, quantization=s.quantization,
                    compile=s.compile, merge_lora=True)  # inference only: LoRA folded into the weights
                device = str(pipeline.model.device)
                if device == "cpu":
                    threads = cpu_threads(s.cpu_threads)
                    torch.set_num_threads(threads)
                    self._logger.info(f"model on the CPU with {threads} torch thread(s) (cpu_threads)")
                self._logger.info(f"loaded {source} on {device} in {time.monotonic() - t:.1f} s")
                engine = eng.Engine(pipeline, max_queue=s.max_queue, cache_frames=s.frame_cache,
                                    max_batch=s.max_batch)
                del pipeline
                if s.warmup and self._set_stage(gen, "warm-up query"):
                    t = time.monotonic()
                    try:
                        engine.submit(warmup_request(engine.pipeline)).result(600)
                        self._logger.info(f"warm-up query took {time.monotonic() - t:.2f} s")
                    except Exception as exc:  # the model answers; only the warm-up failed
                        self._logger.warning(f"warm-up query failed: {exc}")
                with self._lock:
                    if gen == self.generation:
                        self.engine, engine = engine, None
                        self.state, self.stage, self.device = "ready", "", device
                        self.load_seconds = time.monotonic() - self._started
                        self._logger.info(f"ready {self.load_seconds:.1f} s after activation")
            except Exception as exc:  # noqa: BLE001 - any load failure leaves the node inactive
                reason = f"cannot load checkpoint {s.checkpoint!r}: {type(exc).__name__}: {exc}"
                self._logger.error(reason)
                with self._lock:
                    current = gen == self.generation
                    if current:
                        self.state, self.stage = "inactive", ""
                        self.failure = f"the model failed to load: {reason}; fix it and activate again"
                if current:
                    self._on_failure(gen, reason)
            finally:
                if engine is not None:  # superseded by a deactivate or a newer activation
                    engine.close(timeout=1.0)
                    engine.wait_released()  # under the load lock: the next load starts after this
                    engine = None
                    _free_memory()


def cpu_threads(requested: int) -> int:
    """Torch threads on a CPU: ``requested``, or half the usable cores (at least 1) for 0."""
    if requested > 0:
        return requested
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


def warmup_request(pipeline) -> eng.Request:
    """One query on a blank frame that runs every branch the model has (text,
    and audio when it has an audio branch: its first use imports and sets up
    the filterbank), so the first real query of either kind is not slow."""
    blank = eng.Frame(np.zeros((64, 64, 3), np.uint8))
    if getattr(pipeline.config, "audio", None) is None:
        return eng.Request(frame=blank, text="object")
    noise = np.random.default_rng(0).normal(0.0, 0.01, 32000).astype(np.float32)
    return eng.Request(frame=blank, text="object", audio=noise, sample_rate=16000)


def _free_memory() -> None:
    gc.collect()
    import sys

    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def resolve_checkpoint(checkpoint: str) -> str:
    """A folder path or preset name for ``AnyRefPipeline.from_pretrained``.

    A preset name, unless a folder of that name is in the working directory;
    else a folder by :func:`anyref_ros.ros_env.resolve_path` (absolute,
    relative to the working directory, or relative to the package's share
    folder, where ``model/toy`` is installed), checked readable.
    """
    from anyref_ros.model import preset_names

    from anyref_ros.model.loading import resolve_model_path

    if checkpoint in preset_names() and not Path(checkpoint).expanduser().is_dir():
        return checkpoint
    try:
        folder = ros_env.resolve_path(checkpoint, "checkpoint", kind="folder")
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc}: it is neither a folder nor a preset ({', '.join(preset_names())})") from None
    # checked before use: a readable folder, symlinks resolved
    return str(resolve_model_path(folder, what="parameter checkpoint", kind="folder"))


def check_checkpoint_files(source: str) -> None:
    """For a checkpoint folder: its config reads and every weight file it names
    exists (cheap: no torch, nothing loaded). Raises with what is missing."""
    path = Path(source)
    if not path.is_dir():
        return  # a preset
    from anyref_ros.model import AnyRefConfig
    from anyref_ros.model.loading import resolve_files

    # every weight path: exists, a regular readable file (not a FIFO or device), else a WeightsError naming it
    resolve_files(AnyRefConfig.load(path), path)
