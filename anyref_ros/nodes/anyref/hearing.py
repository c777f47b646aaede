"""Audio input of the anyref node.

``audio`` (anyref_ros/AudioChunk): ``s16le``/``f32le``, 8-96 kHz, any channel
count (mixed to mono for the model and the sound-event detector; with
``mic_positions`` set, chunks of that many channels are kept as they are,
for the sound's direction). Sizes are checked before decoding; a malformed chunk
(other rate or encoding, 0 channels, a length that is not whole frames,
NaN/inf samples, longer than :data:`MAX_CHUNK_SECONDS`) is dropped with a
throttled warning and counted (``audio_chunks_dropped``). Good chunks go
into an :class:`~anyref_ros.audio.ring.AudioRing` (the last
max(audio_window_s, 3.5) s, and never more than its hard sample cap: 60 s at
96 kHz, 23 MB) and to the sound-event detector, whose events go to
:mod:`.sound_events`. Gaps, clock jumps and rate changes restart the ring
(see the ring's docstring).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import numpy as np
from rclpy.qos import qos_profile_sensor_data

from anyref_ros.audio.direction import finder_for, mic_positions_from_flat
from anyref_ros.audio.events import EventConfig, SoundEventDetector
from anyref_ros.audio.ring import AudioRing
from anyref_ros.audio.signal import to_mono
from anyref_ros.msg import AudioChunk
from anyref_ros.nodes import conversions as conv

from .support import QueryError, clip, guarded, stamp_seconds

AUDIO_RATES = (8000, 96000)  # Hz accepted on the audio topic and in requests
MAX_CHUNK_SECONDS = 10.0  # longer audio chunks are dropped
SOUND_CLIP_S = 2.0  # audio a sound query uses
RING_MIN_S = SOUND_CLIP_S + 1.5  # pre-roll (<= 1 s) + the 2 s clip + 0.5 s of lateness


def decode_audio(chunk: AudioChunk, max_seconds: float) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of a chunk (topic or request), checked by
    the one AudioChunk validator with this node's rates; ValueError
    (ConversionError) says what is wrong."""
    return conv.audio_to_numpy(chunk, max_seconds, rates=AUDIO_RATES, mono=True)


class Hearing:
    def __init__(self, node, on_sound: Callable) -> None:
        self.node = node
        self.log = node.throttle
        self.stats = node.stats
        self._on_sound = on_sound  # (SoundEvent) -> None
        self._lock = threading.Lock()  # the callback vs clear()
        self.sub = None
        self.audio = AudioRing(RING_MIN_S)
        self.detector = SoundEventDetector()
        self.mics: Optional[np.ndarray] = None  # (channels, 3): mic_positions, None = no direction
        self.frame_id = ""  # frame_id of the newest chunk's header: the frame of mic_positions

    def subscribe(self, group) -> None:
        p = self.node.param
        config = EventConfig(threshold_db=p("sound_event_threshold_db"), min_duration_s=p("sound_event_min_duration_s"),
                             refractory_s=p("sound_event_refractory_s"))  # ValueError: contradicting parameters
        mics = None
        if len(p("mic_positions")):
            mics = mic_positions_from_flat(p("mic_positions"))
            finder_for(mics, 16000)  # ValueError: a geometry that is no microphone array (kept for 16 kHz audio)
        self.mics = mics
        with self._lock:
            self.audio = AudioRing(max(p("audio_window_s"), RING_MIN_S))
            self.detector = SoundEventDetector(config)
        self.sub = self.node.create_subscription(AudioChunk, "audio", self.on_audio, qos_profile_sensor_data,
                                                 callback_group=group)

    def unsubscribe(self) -> None:
        if self.sub is not None:
            self.node.destroy_subscription(self.sub)
            self.sub = None
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.audio.clear()
            self.detector.reset()

    @guarded("audio")
    def on_audio(self, msg: AudioChunk) -> None:
        try:
            samples, rate = conv.audio_to_numpy(msg, MAX_CHUNK_SECONDS, rates=AUDIO_RATES)
            mono = to_mono(samples)
            stamp = stamp_seconds(msg.header)
            if stamp == 0.0:  # a driver without a clock: the chunk ends now
                stamp = max(0.0, self.node.now() - mono.shape[0] / rate)
            kept = mono
            if self.mics is not None:
                if samples.shape[1] == len(self.mics):
                    kept = samples
                else:
                    self.stats.inc("audio_channel_mismatch")
                    self.log("warning", "audio-channels",
                             f"audio has {samples.shape[1]} channel(s) but mic_positions gives {len(self.mics)} "
                             "microphones: sound events get no direction; publish every channel of the array "
                             "or fix mic_positions")
            with self._lock:
                self.audio.push(kept, rate, stamp)
                self.frame_id = msg.header.frame_id
                events = self.detector.feed(mono, rate, stamp) if self.node.param("sound_events") else []
        except ValueError as exc:
            self.stats.inc("audio_chunks_dropped")
            self.log("warning", "audio", f"dropping audio chunk: {clip(exc, 200)}")
            return
        self.stats.inc("audio_chunks")
        for event in events:
            self.stats.inc("sound_events_detected")
            self._on_sound(event)

    def last(self, seconds: float) -> tuple[np.ndarray, int]:
        """The newest ``seconds`` of audio (mono) and its rate; QueryError when there is none."""
        samples, rate, _ = self.audio.latest(seconds)
        if samples.size == 0:
            raise QueryError("no audio has arrived on the audio topic yet (anyref_ros/AudioChunk, "
                             f"s16le or f32le, {AUDIO_RATES[0]}-{AUDIO_RATES[1]} Hz)")
        return to_mono(samples) if samples.ndim == 2 else samples, rate

    def array_clip(self, samples: np.ndarray) -> bool:
        """Whether ``samples`` (a stretch of the ring) holds every microphone of ``mic_positions``."""
        return self.mics is not None and samples.ndim == 2 and samples.shape[1] == len(self.mics)

    def wait_until(self, t_end: float, deadline: float, stop: threading.Event) -> None:
        """Block until the ring holds audio up to ``t_end`` (stream seconds),
        ``deadline`` (monotonic) passes, or ``stop`` is set."""
        while self.audio.end_stamp < t_end and time.monotonic() < deadline and not stop.is_set():
            stop.wait(0.02)
