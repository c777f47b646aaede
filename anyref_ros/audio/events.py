"""Streaming sound-event detection: energy onsets over an adaptive noise floor.

What it is for
--------------
The anyref node segments "the thing that made that sound". It must answer
within 3 s of a sound's end for sounds up to 2 s, so the detector reports an
event as soon as a sound has lasted ``min_duration_s`` -- it does not wait
for the end -- and gives its onset time; the node then cuts
``[onset - pre_roll, onset - pre_roll + 2 s]`` from its :class:`AudioRing`.

How it works
------------
1. The stream is cut into frames of ``frame_s`` (20 ms), carrying the
   remainder of each chunk over to the next, and each frame's RMS level in
   dBFS is computed in one vectorised step (no per-sample Python).
2. A noise floor follows the frame levels asymmetrically: it falls quickly
   (``floor_down_s``, 0.1 s time constant) when the room gets quieter and
   rises slowly (``floor_up_s``, 4 s) when it gets louder, so short sounds
   barely move it while a new steady background (a fan, mains hum) is
   absorbed within seconds. It never goes below ``min_floor_db`` (-70
   dBFS). Frames of digital silence (all zeros: FLOOR_DB, -120 dBFS) say
   nothing about the room: they neither set nor move the floor, so a
   stream that starts with digital silence (a driver warming up, a muted
   microphone) and then room noise gives no event. The floor starts at the
   level of the first frame after a reset that is not digital silence.
3. A frame is *loud* when its level exceeds floor + ``threshold_db`` (12 dB).
   A run of loud frames (dips shorter than ``hangover_s`` are bridged) that
   lasts ``min_duration_s`` (0.15 s) is a sound: one :class:`SoundEvent` is
   returned at that moment with ``onset_s`` = start time of its first loud
   frame (within one frame, 20 ms, of the true onset). A 5 ms click is one
   or two loud frames: never an event.
4. The sound ends when the level stays below floor + threshold -
   ``hysteresis_db`` for ``hangover_s``. A new sound starting less than
   ``refractory_s`` (2 s) after the previous one ended is taken as its
   continuation and not reported (two bangs 0.5 s apart = one event).
5. A sound lasting ``max_event_s`` (8 s) is declared background: the floor
   jumps to the current level and the sound ends.

Steady hum rule: a hum present from the start sets the floor and is never
reported. A hum (or any steady noise) that switches on abruptly, at least
``threshold_db`` above the floor, is reported once, at its start, like any
other sound; the floor then catches up with it (``floor_up_s``, at the latest
after ``max_event_s``) and it is never reported again.

Time and robustness
-------------------
Stamps follow :class:`~anyref_ros.audio.ring.StreamClock`, the same
timeline as the ring buffer: stamp of a chunk's first sample, 0 = unknown
(contiguous), gaps or backward jumps beyond ``gap_tolerance_s`` restart the
framing and drop any sound in progress (the floor is kept). A rate change
resets everything, floor included. A malformed chunk (not 1-D numeric,
NaN/inf samples, rate outside [1000, 384000] Hz, bad stamp) raises
ValueError *before* any state changes: drop it and go on. Empty chunks are
ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import List, Optional

import numpy as np

from .ring import GAP_TOLERANCE_S, StreamClock, check_chunk
from .signal import FLOOR_DB

__all__ = ["EventConfig", "SoundEvent", "SoundEventDetector"]


@dataclass(frozen=True)
class EventConfig:
    """Detector parameters (seconds, dB). See the module docstring."""

    threshold_db: float = 12.0  # loud = level above floor + this
    min_duration_s: float = 0.15  # a sound is reported once it has lasted this
    refractory_s: float = 2.0  # a sound starting sooner after the previous one's end continues it
    frame_s: float = 0.02  # analysis frame
    floor_down_s: float = 0.1  # floor time constant when the level is below it
    floor_up_s: float = 4.0  # floor time constant when the level is above it
    max_event_s: float = 8.0  # a sound this long becomes the background
    hangover_s: float = 0.06  # dips shorter than this do not end a sound
    hysteresis_db: float = 3.0  # a sound ends below floor + threshold - this
    min_floor_db: float = -70.0  # the floor never goes lower (dBFS)
    gap_tolerance_s: float = GAP_TOLERANCE_S  # stamp jump that restarts the stream

    def __post_init__(self) -> None:
        positive = ("frame_s", "floor_down_s", "floor_up_s", "max_event_s", "min_duration_s")
        non_negative = ("threshold_db", "refractory_s", "hangover_s", "hysteresis_db", "gap_tolerance_s")
        for name in positive + non_negative:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or (v <= 0 if name in positive else v < 0):
                raise ValueError(f"EventConfig.{name}: expected a finite number "
                                 f"{'> 0' if name in positive else '>= 0'}, got {v!r}")
        if not (isinstance(self.min_floor_db, (int, float)) and FLOOR_DB <= self.min_floor_db <= 0):
            raise ValueError(f"EventConfig.min_floor_db: expected dBFS in [{FLOOR_DB}, 0], got {self.min_floor_db!r}")
        if not 0.001 <= self.frame_s <= 0.5:
            raise ValueError(f"EventConfig.frame_s: expected 0.001..0.5 s, got {self.frame_s!r}")
        if self.hysteresis_db > self.threshold_db:
            raise ValueError(f"EventConfig.hysteresis_db ({self.hysteresis_db}) must not exceed "
                             f"threshold_db ({self.threshold_db})")
        if self.max_event_s <= self.min_duration_s:
            raise ValueError(f"EventConfig.max_event_s ({self.max_event_s}) must exceed "
                             f"min_duration_s ({self.min_duration_s})")


@dataclass(frozen=True)
class SoundEvent:
    """One detected sound.

    ``onset_s``: stream time of its first loud frame. ``offset_s``: time its
    last loud frame ended, if the sound had already ended when the event was
    returned (e.g. the whole sound arrived in one chunk), else None.
    ``peak_db``: loudest frame so far (dBFS). ``floor_db``: noise floor at
    the onset (dBFS).
    """

    onset_s: float
    offset_s: Optional[float]
    peak_db: float
    floor_db: float


_IDLE, _CANDIDATE, _ACTIVE = 0, 1, 2


class SoundEventDetector:
    """Streaming detector: ``feed(samples, rate, stamp_s) -> list[SoundEvent]``.

    Not thread-safe: feed it from one thread (the audio callback). Properties:
    ``floor_db`` (None before the first frame), ``in_sound``, ``last_offset_s``
    (end of the last finished sound, or None), ``rate``. ``reset()`` forgets
    everything.
    """

    def __init__(self, config: Optional[EventConfig] = None):
        self.config = config if config is not None else EventConfig()
        self._clock = StreamClock(self.config.gap_tolerance_s)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self._clock.reset()
        self._frame_len = 0
        self._alpha_down = self._alpha_up = 0.0
        self.floor_db: Optional[float] = None
        self.last_offset_s: Optional[float] = None
        self._restart_stream()

    def _restart_stream(self) -> None:
        """Drop the partial frame and any sound in progress (keeps the floor)."""
        self._rest = np.zeros(0, dtype=np.float32)
        self._rest_t = 0.0  # time of self._rest[0]
        self._state = _IDLE
        self._onset = 0.0
        self._last_loud_end = 0.0
        self._peak = FLOOR_DB
        self._onset_floor = FLOOR_DB
        self._merge = False  # the current sound continues the previous one
        self._refractory_until = -math.inf

    @property
    def rate(self) -> int:
        return self._clock.rate

    @property
    def in_sound(self) -> bool:
        return self._state == _ACTIVE

    # ------------------------------------------------------------------ feeding
    def feed(self, samples: np.ndarray, rate: int, stamp_s: float) -> List[SoundEvent]:
        """Process one mono chunk whose first sample was captured at ``stamp_s``;
        return the events that became reportable in it (usually none, at
        most a few)."""
        samples, rate, stamp = check_chunk(samples, rate, stamp_s)
        n = samples.shape[0]
        if n == 0:
            return []
        if rate != self._clock.rate and self._clock.rate:
            self.reset()
        start, restarted = self._clock.advance(n, rate, stamp)
        cfg = self.config
        if self._frame_len == 0:
            self._frame_len = max(1, int(round(cfg.frame_s * rate)))
            dt = self._frame_len / rate
            self._alpha_down = 1.0 - math.exp(-dt / cfg.floor_down_s)
            self._alpha_up = 1.0 - math.exp(-dt / cfg.floor_up_s)
        if restarted:
            self._restart_stream()
            self._rest_t = start
        elif self._rest.size == 0:
            self._rest_t = start
        else:  # re-anchor the carried samples to this chunk's stamp
            self._rest_t = start - self._rest.size / rate

        L = self._frame_len
        data = np.concatenate([self._rest, samples]) if self._rest.size else samples
        nf = data.shape[0] // L
        t0 = self._rest_t
        self._rest = data[nf * L:].copy()
        self._rest_t = t0 + nf * L / rate
        if nf == 0:
            return []
        frames = data[: nf * L].reshape(nf, L)
        ms = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / L
        levels = 10.0 * np.log10(np.maximum(ms, 10.0 ** (FLOOR_DB / 10.0)))
        return self._run(levels.tolist(), t0, L / rate)

    def _run(self, levels, t0: float, dt: float) -> List[SoundEvent]:
        """The per-frame state machine (a few operations per 20 ms frame)."""
        cfg = self.config
        out: List[SoundEvent] = []
        reported_index = -1  # index in ``out`` of an event whose sound may end in this call
        floor = self.floor_db
        for i, level in enumerate(levels):
            t = t0 + i * dt
            silent = level <= FLOOR_DB  # digital silence: never loud, moves no floor
            if floor is None:
                if silent:
                    continue  # (nothing can be in progress before the first floor)
                floor = max(level, cfg.min_floor_db)
            if self._state == _ACTIVE:
                if level > floor + cfg.threshold_db - cfg.hysteresis_db:
                    self._last_loud_end = t + dt
                    self._peak = max(self._peak, level)
                elif t + dt - self._last_loud_end >= cfg.hangover_s:
                    self._end_sound(out, reported_index)
                    reported_index = -1
                if self._state == _ACTIVE and t + dt - self._onset >= cfg.max_event_s:
                    floor = level  # background now
                    self._end_sound(out, reported_index, offset=t + dt)
                    reported_index = -1
            elif level > floor + cfg.threshold_db:
                if self._state == _IDLE:
                    self._state = _CANDIDATE
                    self._onset = t
                    self._onset_floor = floor
                    self._peak = level
                    self._merge = t < self._refractory_until
                else:
                    self._peak = max(self._peak, level)
                self._last_loud_end = t + dt
                if t + dt - self._onset >= cfg.min_duration_s:
                    self._state = _ACTIVE
                    if not self._merge:
                        reported_index = len(out)
                        out.append(SoundEvent(self._onset, None, self._peak, self._onset_floor))
            elif self._state == _CANDIDATE and t + dt - self._last_loud_end >= cfg.hangover_s:
                self._state = _IDLE  # too short: a click
            if not silent:
                a = self._alpha_down if level < floor else self._alpha_up
                floor = max(floor + a * (level - floor), cfg.min_floor_db)
        self.floor_db = floor
        return out

    def _end_sound(self, out: List[SoundEvent], reported_index: int, offset: Optional[float] = None) -> None:
        offset = self._last_loud_end if offset is None else offset
        self._state = _IDLE
        self.last_offset_s = offset
        self._refractory_until = offset + self.config.refractory_s
        if reported_index >= 0:
            out[reported_index] = replace(out[reported_index], offset_s=offset, peak_db=self._peak)
