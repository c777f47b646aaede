"""Sound events become queries, unasked: "what made that sound?".

The audio callback reports each :class:`~anyref_ros.audio.events.SoundEvent`
(``min_duration_s`` after its onset). The event's frame is the stored camera
frame closest to ``onset + min_duration_s`` (frames arriving later replace it
when closer). One thread of its own then waits until the ring holds
``[onset - pre_roll, onset - pre_roll + 2 s]`` (at most :data:`AUDIO_WAIT_S`),
runs the query on the engine and publishes the answer on ``~/sound_sources``
(and markers when depth gives a position); an answer whose mask is empty (the
model names the sound but finds nothing making it) is published too, with
``has_box`` false, and counted in ``sound_events_unlocated``.

Rule for events that come while the model is busy: at most one sound query
runs and at most one event waits, with its own 2 s of audio copied out of
the ring as soon as it has been heard (while the running query waits), so a
slow model never leaves it with audio the ring no longer holds; a newer
event replaces the waiting one
(``sound_events_replaced`` in /diagnostics); an event the engine cannot take
(queue full) or that finds no frame near it is dropped (``sound_events_dropped``).
Nothing piles up.

With ``mic_positions`` set and audio of that many channels, the event's
clip keeps every channel: its direction is estimated and published, and the
answer is the object in that direction, or "not found" with where the sound
came from (:mod:`.sound_direction`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from anyref_ros import engine as eng
from anyref_ros.audio.signal import to_mono
from anyref_ros.msg import Referral
from anyref_ros.spatial.sound_source import crop_asker
from anyref_ros.workers import Worker

from .hearing import SOUND_CLIP_S
from .intake import CameraFrame
from .publishing import empty_answer
from .sound_direction import SoundDirection, apply
from .support import QueryError, clip, stamp_seconds

AUDIO_WAIT_S = SOUND_CLIP_S + 0.5  # longest wait for an event's audio, from its detection
FRAME_SLOP_S = 1.0  # the chosen frame must be this close to the sound


@dataclass
class PendingEvent:
    onset: float
    t_ref: float  # the moment the frame should show
    detected: float  # monotonic
    frame: Optional[CameraFrame]
    depth: Any = None  # the depth image nearest to the frame (kept: the depth buffer moves on)
    clip: Any = None  # (samples, rate): its own 2 s of audio, copied once heard (the ring moves on)
    audio_frame: str = ""  # frame_id of the audio when it was heard (the frame of mic_positions)


class SoundEvents:
    def __init__(self, node, intake, hearing, model, publishing, transforms) -> None:
        self.node = node
        self.log = node.throttle
        self.stats = node.stats
        self.intake = intake
        self.hearing = hearing
        self.model = model
        self.publishing = publishing
        self._cond = threading.Condition()
        self._pending: Optional[PendingEvent] = None
        self.direction = SoundDirection(node, hearing, intake, transforms)
        self._worker = Worker("anyref-sound-events", self._loop, report=node.get_logger().error)

    def start(self) -> None:
        """~/sound_direction and the worker thread, stopping (joined, checked)
        any earlier one first; WorkerStuck if that one does not end."""
        if self.direction.pub is None:
            self.direction.create()
        self._worker.start()

    def stop(self) -> None:
        self._worker.request_stop()
        self.clear()  # wakes the worker waiting for an event
        self._worker.stop()
        self.direction.destroy()

    def clear(self) -> None:
        with self._cond:
            self._pending = None
            self._cond.notify_all()

    # -------------------------------------------------- from sensor callbacks
    def on_event(self, event) -> None:
        t_ref = event.onset_s + self.node.param("sound_event_min_duration_s")
        pending = PendingEvent(event.onset_s, t_ref, time.monotonic(), self.intake.frame_near(t_ref),
                               audio_frame=self.hearing.frame_id)
        pending.depth = self._nearest_depth(pending.frame)
        with self._cond:
            if self._pending is not None:
                self.stats.inc("sound_events_replaced")
            self._pending = pending
            self._cond.notify_all()

    def on_frame(self, frame: CameraFrame) -> None:
        with self._cond:
            p = self._pending
            if p is None or (p.frame is not None and abs(frame.stamp - p.t_ref) >= abs(p.frame.stamp - p.t_ref)):
                return
            p.frame = frame
        depth = self._nearest_depth(frame)
        with self._cond:
            if p.frame is frame:
                p.depth = depth

    def on_depth(self, depth) -> None:
        with self._cond:
            p = self._pending
            if p is None or p.frame is None:
                return
            t = p.frame.stamp
            if p.depth is None or abs(stamp_seconds(depth.header) - t) < abs(stamp_seconds(p.depth.header) - t):
                p.depth = depth

    def _nearest_depth(self, frame: Optional[CameraFrame]):
        return None if frame is None else self.intake.depth.nearest(frame.stamp, self.node.param("depth_sync_slop_s"))

    # ----------------------------------------------------------------- worker
    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._cond:
                if self._pending is None:
                    self._cond.wait(0.5)
                p = self._pending
            if p is None:
                continue
            start = p.onset - self.node.param("sound_event_pre_roll_s")
            t = time.monotonic()
            if p.clip is None:
                self.hearing.wait_until(start + SOUND_CLIP_S, p.detected + AUDIO_WAIT_S, stop)
            waited = time.monotonic() - t
            with self._cond:
                if self._pending is not p:
                    continue  # replaced (counted) or cleared while waiting
                self._pending = None
            try:
                self._answer(p, start, waited)
            except Exception as exc:  # noqa: BLE001 - one event failing never stops the thread
                self.stats.inc("sound_events_dropped")
                self.log("warning", "sound-event", f"sound event at {p.onset:.2f} s: {clip(exc, 300)}")

    def _keep_pending_clip(self) -> None:
        """Copy the waiting event's 2 s of audio out of the ring once it has all been heard."""
        with self._cond:
            p = self._pending
        if p is None or p.clip is not None:
            return
        start = p.onset - self.node.param("sound_event_pre_roll_s")
        if self.hearing.audio.end_stamp < start + SOUND_CLIP_S:
            return
        audio, rate, _ = self.hearing.audio.window(start, start + SOUND_CLIP_S)
        if audio.size:
            p.clip = (audio, rate)
            self.stats.inc("sound_event_clips_kept")

    def _answer(self, p: PendingEvent, start: float, waited: float) -> None:
        engine, generation = self.model.require(self.node.get_fully_qualified_name())
        frame = p.frame
        if frame is None or abs(frame.stamp - p.t_ref) > FRAME_SLOP_S:
            raise QueryError("no camera frame within 1 s of the sound")
        frame.used = True
        audio, rate = p.clip if p.clip is not None else self.hearing.audio.window(start, start + SOUND_CLIP_S)[:2]
        if audio.size == 0:
            raise QueryError("its audio is no longer buffered")
        direction = self.direction.estimate(audio, rate, p.onset - start, p.onset, p.audio_frame)
        mono = to_mono(audio) if audio.ndim == 2 else audio
        image = frame.rgb(self.node.param("max_image_pixels"))
        request = eng.Request(frame=eng.Frame(image=image, key=frame.key), audio=mono, sample_rate=rate)
        ref, job = self._run(engine, request)
        if self.model.generation != generation:
            raise QueryError("the node deactivated while the query ran")
        joined = None
        if direction is not None:
            ask = self._asker(engine, image, mono, rate, p.onset)
            joined = self.direction.join(ref, direction, p.audio_frame, frame.header, p.depth, ask)
            ref = joined.ref
        if empty_answer(ref) and joined is None:  # still answered: "heard a <class>, found nothing that makes it"
            self.stats.inc("sound_events_unlocated")
        answer = self.publishing.referral(ref, time.monotonic() - p.detected, frame.header, "", Referral.TYPE_AUDIO,
                                          rgb=image, depth=p.depth)
        if joined is not None:
            apply(answer.msg, joined, frame.header.stamp)
        self.publishing.answer(answer, image, ref.mask, "sound_sources")
        msg = answer.msg
        self.stats.inc("sound_events_answered")
        self.node.get_logger().info(
            f"sound event at {p.onset:.2f} s: {msg.description!r} ({msg.mask_area} px) on frame {frame.stamp:.2f} s; "
            f"audio waited {waited:.2f} s, model {job.latency or 0.0:.2f} s, "
            f"{time.monotonic() - p.detected:.2f} s after detection")

    def _asker(self, engine, image: np.ndarray, mono: np.ndarray, rate: int, onset: float):
        """``ask(box)`` for the join: the same sound asked on a crop of ``image``;
        None when that fails (the first answer still stands)."""
        def segment(crop: np.ndarray):
            try:
                again, _ = self._run(engine, eng.Request(frame=eng.Frame(image=crop), audio=mono, sample_rate=rate))
            except Exception as exc:  # noqa: BLE001
                self.log("warning", "sound-reask", f"sound event at {onset:.2f} s: re-asking on a crop failed: "
                                                   f"{clip(exc, 200)}")
                return None
            return again.mask

        return crop_asker(image, segment)

    def _run(self, engine, request: eng.Request):
        """Submit ``request`` and wait for it (copying the waiting event's audio
        meanwhile); the pipeline's answer and the job. QueryError when busy or late."""
        try:
            job = engine.submit(request)
        except (eng.QueueFull, eng.EngineClosed) as exc:
            raise QueryError(f"the model is busy ({exc}); event dropped") from None
        deadline = time.monotonic() + self.node.param("query_timeout_s")
        while not job.wait(0.05):  # meanwhile, the waiting event's audio is copied once heard
            self._keep_pending_clip()
            if time.monotonic() > deadline:
                job.cancel()
                raise QueryError("no answer within query_timeout_s")
        return job.result(0), job
