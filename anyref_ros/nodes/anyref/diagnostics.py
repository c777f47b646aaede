"""/diagnostics of the anyref node, once a second from a callback group of its own.

Level and message, first match wins: ERROR "the model failed to load: ..."
(inactive after a failed load); WARN "loading the model: STAGE (x s)"; WARN
"inactive"; WARN "no camera frame received yet" / "no camera frame for x s";
WARN "the last 5 queries failed: ..."; OK "ready". Values: counters (frames,
queries, audio, sound events), queue, busy, cache, load stage and seconds,
per-stage latency, image-callback duration and camera delay (p50/p99 of the
last 1000 frames), device memory, the 3D outputs' frame, TF backend and the
last reason an answer had no 3D position.
"""

from __future__ import annotations

import os
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from .intake import frame_age
from .support import RECENT_OUTCOMES, clip, guarded

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class Diagnostics:
    def __init__(self, node) -> None:
        self.node = node
        self.log = node.throttle
        self.stats = node.stats
        self.intake, self.hearing, self.model = node.intake, node.hearing, node.model
        self.queries, self.refer = node.queries, node.refer
        self._started = time.monotonic()
        self._warned_no_frames = False
        self.pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def level_and_message(self) -> tuple[int, str]:
        model, latest = self.model, self.intake.latest
        if model.state == "inactive":
            return (ERROR, f"inactive: {model.failure}") if model.failure else (WARN, "inactive: no model loaded")
        if model.state == "loading":
            return WARN, f"loading the model: {model.stage} ({model.seconds:.1f} s)"
        if latest is None:
            if not self._warned_no_frames and time.monotonic() - self._started > 5.0:
                self._warned_no_frames = True
                self.log("warning", "no-frames",
                         f"no camera frame after 5 s on {self.intake.image_topic}: check the remapping and "
                         "image_qos (a RELIABLE subscriber gets nothing from a BEST_EFFORT camera)")
            return WARN, "no camera frame received yet"
        max_age = self.node.param("max_frame_age_s")
        age = frame_age(latest, self.node.now())
        if max_age > 0 and age > max_age:
            return WARN, f"no camera frame for {age:.1f} s on {self.intake.image_topic}"
        failing = self.stats.failing()
        if failing is not None:
            return WARN, f"the last {RECENT_OUTCOMES} queries failed; the last: {clip(failing, 120)}"
        return OK, "ready"

    @guarded("diagnostics")
    def publish(self) -> None:
        self.refer.sweep_goals()
        model = self.model
        engine = model.engine
        stats = engine.stats() if engine is not None else {}
        status = DiagnosticStatus()
        status.name = f"{self.node.get_name()}: AnyRef"
        status.hardware_id = model.device
        status.level, status.message = self.level_and_message()
        values = {**self.stats.snapshot(), "state": model.state, "device": model.device,
                  "load_stage": model.stage, "load_seconds": f"{model.seconds:.1f}",
                  "last_load_s": f"{model.load_seconds:.1f}",
                  "queue_depth": stats.get("queue_depth", 0), "busy": stats.get("busy", False),
                  "waiting_callers": self.queries.slots.used, "waiting_callers_max": self.queries.slots.size,
                  "pending_goals": self.refer.pending_goals,
                  "held_topic_queries": len(self.queries.held),
                  "standing_queries": len(self.node.watching.list),
                  "standing_frame_ms": f"{self.node.watching.last_frame_ms:.1f}",
                  "cached_frames": stats.get("cached_frames", 0),
                  **{k: stats.get(k, 0) for k in ("frames_encoded", "cache_hits", "batches", "mean_batch",
                                                  "max_batch_seen", "prefix_built", "prefix_used",
                                                  "prefix_missed")},
                  "audio_buffered_s": f"{self.hearing.audio.duration:.2f}",
                  "target_frame": self.node.param("target_frame") or "(camera frame)",
                  "tf_backend": self.node.transforms.backend,
                  "last_3d_problem": self.node.publishing.space.last_problem or "none",
                  "microphones": 0 if self.hearing.mics is None else len(self.hearing.mics),
                  "audio_channels": self.hearing.audio.channels,
                  "last_direction_problem": self.node.sound.direction.last_problem or "none",
                  "device_memory_mb": f"{device_memory_mb(model.device):.1f}"}
        for name, recent in (("camera_callback_ms", self.intake.callback_ms), ("camera_delay_ms", self.intake.delay_ms)):
            p50, p99 = recent.percentiles(50, 99)
            if p50 is not None:
                values[f"{name}.p50"], values[f"{name}.p99"] = f"{p50:.3f}", f"{p99:.3f}"
        for stage, ms in stats.get("stage_ms", {}).items():
            values[f"latency_ms.{stage}"] = ms
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray()
        array.header.stamp = self.node.get_clock().now().to_msg()
        array.status = [status]
        self.pub.publish(array)


def device_memory_mb(device: str) -> float:
    """GPU memory allocated by torch on a cuda device, else this process's resident memory."""
    try:
        if device.startswith("cuda"):
            import torch

            return torch.cuda.memory_allocated(torch.device(device)) / 2**20
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except Exception:
        return float("nan")
