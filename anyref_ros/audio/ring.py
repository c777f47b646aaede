"""A bounded, time-stamped ring buffer of mono audio, and the stream clock it
shares with the sound-event detector.

Why
---
The anyref node hears a sound event *after* it started (the detector reports
it once the sound has lasted ``min_duration_s``) and then needs the audio
around its onset. The microphone callback therefore pushes every chunk into
an :class:`AudioRing` that keeps the last few seconds, and the query thread
cuts ``window(onset - pre_roll, onset - pre_roll + 2.0)`` from it.

Time
----
Each chunk comes with ``stamp_s``, the capture time of its first sample
(ROS time as float seconds). :class:`StreamClock` turns these stamps into a
continuous timeline:

* the first chunk starts the timeline at its stamp;
* a chunk whose stamp is within ``gap_tolerance_s`` of where the previous
  chunk ended (``previous stamp + samples / rate``) continues it; the
  timeline is re-anchored to the new stamp, so stamp jitter never
  accumulates into drift and every held sample is at most the jitter off;
* a stamp later than that by more than the tolerance (samples were lost), or
  earlier by more than it (the clock jumped back, e.g. a bag restarted), or a
  change of sample rate, is a *discontinuity*: the stream restarts at the new
  chunk. The ring then drops what it held, so time indexing never spans a
  hole;
* ``stamp_s == 0`` means "unknown" (a driver without clock): the chunk is
  taken as contiguous with the previous one.

Memory
------
The ring preallocates one float32 circular array of
``min(ceil(max_seconds * rate), max_samples)`` samples (``max_samples``
defaults to :data:`HARD_CAP`, 60 s at 96 kHz = 23 MB), so a chunk claiming an
absurd rate cannot make it keep everything; rates outside
[``MIN_RATE``, ``MAX_RATE``] of :mod:`anyref_ros.audio.signal` are refused.
A push copies its chunk once (O(len(chunk))); reads copy what they return.
All public methods take an internal lock: push from a ROS callback, read
from another thread.
"""

from __future__ import annotations

import math
import threading
from typing import Tuple

import numpy as np

from .signal import check_rate

__all__ = ["HARD_CAP", "GAP_TOLERANCE_S", "StreamClock", "AudioRing", "check_chunk"]

#: Most samples an :class:`AudioRing` holds, whatever it is told (60 s at 96 kHz).
HARD_CAP = 96000 * 60
#: Default stamp tolerance (s) before a chunk counts as a discontinuity.
GAP_TOLERANCE_S = 0.25


def check_chunk(samples, rate, stamp_s, name: str = "samples",
                multichannel: bool = False) -> Tuple[np.ndarray, int, float]:
    """Validate one pushed/fed chunk; return (float32 samples, int rate, float stamp).

    ``samples`` must be a 1-D float or integer numpy array (integers are taken
    as already scaled values; use :func:`signal.to_mono` for PCM) with finite
    values (``multichannel``: also (frames, channels), 1..32 channels);
    ``rate`` an integer in the accepted range; ``stamp_s`` a finite number
    >= 0. Raises ValueError saying what is wrong.
    """
    shape_ok = isinstance(samples, np.ndarray) and (
        samples.ndim == 1 or (multichannel and samples.ndim == 2 and 1 <= samples.shape[1] <= 32))
    if not shape_ok or samples.dtype.kind not in "fiu":
        raise ValueError(f"{name}: expected a 1-D float32 numpy array of mono samples (use "
                         f"signal.to_mono for multi-channel or PCM), got {type(samples).__name__} "
                         f"with shape {getattr(samples, 'shape', None)}")
    rate = check_rate(rate, "rate")
    try:
        stamp = float(stamp_s)
    except (TypeError, ValueError):
        raise ValueError(f"stamp_s: expected the capture time of the first sample in seconds, "
                         f"got {stamp_s!r}") from None
    if not math.isfinite(stamp) or stamp < 0:
        raise ValueError(f"stamp_s: expected a finite time >= 0 s (0 = unknown), got {stamp_s!r}")
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size and not np.isfinite(samples).all():
        raise ValueError(f"{name}: the chunk holds NaN or infinite samples; it was dropped "
                         f"(check the microphone driver's format)")
    return samples, rate, stamp


class StreamClock:
    """Continuous timeline of a chunked audio stream (see the module docstring).

    ``advance(n, rate, stamp_s)`` returns ``(start_s, restarted)``: the time
    given to the chunk's first sample, and whether the stream restarted at
    this chunk (first chunk, rate change, gap or backward jump beyond the
    tolerance). ``next_s`` is the time of the sample after the last one.
    """

    def __init__(self, gap_tolerance_s: float = GAP_TOLERANCE_S):
        if not (isinstance(gap_tolerance_s, (int, float)) and math.isfinite(gap_tolerance_s)
                and gap_tolerance_s >= 0):
            raise ValueError(f"gap_tolerance_s: expected a finite number >= 0 s, got {gap_tolerance_s!r}")
        self.gap_tolerance_s = float(gap_tolerance_s)
        self.reset()

    def reset(self) -> None:
        self.rate = 0
        self.next_s = 0.0
        self.restarts = 0  # discontinuities seen after the first chunk

    def advance(self, n: int, rate: int, stamp_s: float) -> Tuple[float, bool]:
        if self.rate == 0:
            restarted, start = True, stamp_s
        elif rate != self.rate:
            restarted, start = True, stamp_s
            self.restarts += 1
        elif stamp_s == 0.0:
            restarted, start = False, self.next_s
        elif abs(stamp_s - self.next_s) > self.gap_tolerance_s:
            restarted, start = True, stamp_s
            self.restarts += 1
        else:
            restarted, start = False, stamp_s
        self.rate = rate
        self.next_s = start + n / rate
        return start, restarted


class AudioRing:
    """Last ``max_seconds`` of a mono or multi-channel stream, indexed by capture time.

    ``AudioRing(max_seconds, max_samples=HARD_CAP, gap_tolerance_s=0.25)``.

    * ``push(samples, rate, stamp_s)``: append a mono float32 chunk whose
      first sample was captured at ``stamp_s`` ((frames,) or (frames,
      channels): reads return the same layout; ``max_samples`` counts
      samples of every channel). A change of layout or of ``rate`` clears
      the buffer and restarts it at the new rate; so does a stamp gap or
      backward jump beyond ``gap_tolerance_s`` (module docstring). A chunk
      longer than the capacity keeps its last samples. Bad chunks (wrong
      shape, NaN/inf, rate outside [1000, 384000] Hz) raise ValueError and
      leave the buffer untouched.
    * ``latest(seconds)`` and ``window(t0, t1)`` return copies
      ``(samples, rate, start_stamp)``, clipped to what is held
      (``start_stamp`` is the time of the first returned sample; empty
      samples when nothing overlaps).
    * ``duration`` (s held), ``rate`` (0 before the first chunk),
      ``start_stamp``, ``end_stamp`` (time just after the newest sample),
      ``capacity`` (samples at the current rate), ``restarts``, ``clear()``.
    """

    def __init__(self, max_seconds: float, max_samples: int = HARD_CAP,
                 gap_tolerance_s: float = GAP_TOLERANCE_S):
        if not (isinstance(max_seconds, (int, float)) and not isinstance(max_seconds, bool)
                and math.isfinite(max_seconds) and max_seconds > 0):
            raise ValueError(f"max_seconds: expected a finite number of seconds > 0, got {max_seconds!r}")
        if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < 1:
            raise ValueError(f"max_samples: expected an integer >= 1, got {max_samples!r}")
        self.max_seconds = float(max_seconds)
        self.max_samples = int(max_samples)
        self._clock = StreamClock(gap_tolerance_s)
        self._lock = threading.Lock()
        self._buf = np.zeros((0, 1), dtype=np.float32)  # (frames, channels)
        self._layout = None  # () for a mono ring, (channels,) for a multi-channel one
        self._write = 0  # index of the next sample to write
        self._count = 0  # samples held
        self._end = 0.0  # time just after the newest sample

    # ------------------------------------------------------------------ writing
    def push(self, samples: np.ndarray, rate: int, stamp_s: float) -> None:
        samples, rate, stamp = check_chunk(samples, rate, stamp_s, multichannel=True)
        n = samples.shape[0]
        if n == 0:
            return
        layout = samples.shape[1:]
        samples = samples.reshape(n, -1)
        with self._lock:
            if layout != self._layout and self._layout is not None:
                self._clock.reset()  # another channel count: a new stream
            self._layout = layout
            start, restarted = self._clock.advance(n, rate, stamp)
            if restarted:
                channels = samples.shape[1]
                cap = max(1, min(int(math.ceil(self.max_seconds * rate)), self.max_samples // channels))
                if self._buf.shape != (cap, channels):
                    self._buf = np.zeros((cap, channels), dtype=np.float32)
                self._write = 0
                self._count = 0
            cap = self._buf.shape[0]
            if n >= cap:
                self._buf[:] = samples[n - cap:]
                self._write = 0
                self._count = cap
            else:
                first = min(n, cap - self._write)
                self._buf[self._write: self._write + first] = samples[:first]
                self._buf[: n - first] = samples[first:]
                self._write = (self._write + n) % cap
                self._count = min(cap, self._count + n)
            self._end = start + n / rate

    def clear(self) -> None:
        """Forget everything, including the rate and the timeline."""
        with self._lock:
            self._clock.reset()
            self._buf = np.zeros((0, 1), dtype=np.float32)
            self._layout = None
            self._write = 0
            self._count = 0
            self._end = 0.0

    # ------------------------------------------------------------------ reading
    @property
    def rate(self) -> int:
        return self._clock.rate

    @property
    def capacity(self) -> int:
        return self._buf.shape[0]

    @property
    def restarts(self) -> int:
        return self._clock.restarts

    @property
    def duration(self) -> float:
        with self._lock:
            return self._count / self._clock.rate if self._clock.rate else 0.0

    @property
    def end_stamp(self) -> float:
        with self._lock:
            return self._end

    @property
    def start_stamp(self) -> float:
        with self._lock:
            return self._end - (self._count / self._clock.rate if self._clock.rate else 0.0)

    @property
    def channels(self) -> int:
        """Channels of the stream held (1 for mono; 0 before the first chunk)."""
        with self._lock:
            return 0 if self._layout is None else (self._layout[0] if self._layout else 1)

    def _copy_last(self, k: int, skip_newest: int = 0) -> np.ndarray:
        """Copy of ``k`` samples ending ``skip_newest`` samples before the newest, in the pushed layout."""
        cap = self._buf.shape[0]
        if k <= 0 or cap == 0:
            out = np.zeros((0, self._buf.shape[1]), dtype=np.float32)
        else:
            a = (self._write - skip_newest - k) % cap
            out = self._buf[a: a + k].copy() if a + k <= cap else \
                np.concatenate([self._buf[a:], self._buf[: a + k - cap]])
        return out[:, 0] if self._layout in (None, ()) else out

    def latest(self, seconds: float) -> Tuple[np.ndarray, int, float]:
        """The newest ``seconds`` of audio (or all that is held)."""
        with self._lock:
            rate = self._clock.rate
            if not rate or not seconds > 0:
                return self._copy_last(0), rate, self._end
            k = min(self._count, int(round(min(float(seconds), self.max_seconds) * rate)))
            return self._copy_last(k), rate, self._end - k / rate

    def window(self, t0: float, t1: float) -> Tuple[np.ndarray, int, float]:
        """Audio captured in [t0, t1) seconds, clipped to what is held.
        Sample boundaries are rounded to the nearest sample."""
        t0, t1 = float(t0), float(t1)
        if not (math.isfinite(t0) and math.isfinite(t1)):
            raise ValueError(f"window: expected finite times, got ({t0}, {t1})")
        with self._lock:
            rate = self._clock.rate
            if not rate:
                return self._copy_last(0), rate, t0
            start = self._end - self._count / rate
            i0 = min(max(int(round((t0 - start) * rate)), 0), self._count)
            i1 = min(max(int(round((t1 - start) * rate)), i0), self._count)
            return self._copy_last(i1 - i0, self._count - i1), rate, start + i0 / rate
