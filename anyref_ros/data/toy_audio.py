"""Toy world sounds: one signature sound per shape.

* circle: 440 Hz sine
* square: 220 Hz square wave
* triangle: linear chirp from 300 Hz to 1200 Hz, restarting every second
  (counted from the sound's onset)

The sound itself: float32 mono at 16 kHz, random start phase (sine,
square), peak amplitude uniform in [0.3, 0.8], plus white Gaussian noise at
10 dB SNR (noise power = mean signal power / 10).

Clip layouts (:class:`SoundLayout`):

* onset-aligned (``layout=None``, :func:`shape_sound`; the held-out
  evaluation's ``audio`` task and the first ``model/toy``): the clip starts
  at the sound's onset and the sound lasts the whole clip.
* windowed (:func:`windowed_sound`, what a sound-event detector's window
  looks like): ``[room noise lead-in][sound][room noise to the clip end]``.
  The lead-in is ``lead_in`` seconds (uniform in the layout's range); with
  probability ``late_prob`` the window instead starts up to ``late_max``
  seconds *after* the onset (no lead-in, the sound's first part cut off),
  and with probability ``aligned_prob`` the clip is onset-aligned (no
  lead-in, the sound fills the clip).
  The sound lasts ``duration`` seconds (uniform; cut at the clip end), with
  5 ms fades.  Room noise covers the whole clip: white-to-pink noise
  (random mix, pink by FFT shaping) at an RMS uniform in ``room_rms``, plus,
  with probability ``hum_prob``, a 50 Hz hum (with its 100/150 Hz
  harmonics) of peak amplitude uniform in ``hum_amplitude``.

Named layouts (:data:`LAYOUTS`): ``"train"`` (lead-in 0-0.6 s, 15 % late
starts up to 0.1 s, 10 % onset-aligned, duration 0.8-2 s: the training mix) and ``"offset"``
(lead-in 0-0.5 s, duration 0.8-2 s, no late starts: the evaluation's
``audio_offset`` task).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

SAMPLE_RATE = 16_000
DEFAULT_SECONDS = 2.0
AMPLITUDE_RANGE = (0.3, 0.8)
SNR_DB = 10.0
SINE_HZ = 440.0
SQUARE_HZ = 220.0
CHIRP_HZ = (300.0, 1200.0)


def _waveform(shape: str, t: np.ndarray, phase: float) -> np.ndarray:
    """Unit-amplitude signature waveform of ``shape`` at times ``t`` (s)."""
    if shape == "circle":
        return np.sin(2 * np.pi * SINE_HZ * t + phase)
    if shape == "square":
        return np.where(np.sin(2 * np.pi * SQUARE_HZ * t + phase) >= 0, 1.0, -1.0)
    if shape == "triangle":
        tau = np.mod(t, 1.0)
        f0, f1 = CHIRP_HZ
        return np.sin(2 * np.pi * (f0 * tau + 0.5 * (f1 - f0) * tau**2))
    raise ValueError(f"no signature sound for shape {shape!r}")


def shape_sound(
    rng: np.random.Generator,
    shape: str,
    seconds: float = DEFAULT_SECONDS,
    sample_rate: int = SAMPLE_RATE,
    snr_db: float = SNR_DB,
) -> np.ndarray:
    """Return the noisy signature sound of ``shape``: 1-D float32, ``seconds``
    long at ``sample_rate``. Draws, in order: start phase, amplitude, noise."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    phase = float(rng.uniform(0, 2 * np.pi))
    amplitude = float(rng.uniform(*AMPLITUDE_RANGE))
    clean = amplitude * _waveform(shape, t, phase)
    noise_power = np.mean(clean**2) / (10.0 ** (snr_db / 10.0))
    noisy = clean + rng.normal(0.0, np.sqrt(noise_power), size=clean.shape)
    return noisy.astype(np.float32)


HUM_HZ = 50.0
FADE_SECONDS = 0.005


@dataclass(frozen=True)
class SoundLayout:
    """Where the sound sits in its clip (see the module docstring); seconds."""

    lead_in: Tuple[float, float] = (0.0, 0.6)
    aligned_prob: float = 0.1
    late_prob: float = 0.15
    late_max: float = 0.1
    duration: Tuple[float, float] = (0.8, 2.0)
    room_rms: Tuple[float, float] = (0.002, 0.02)
    hum_prob: float = 0.3
    hum_amplitude: Tuple[float, float] = (0.01, 0.05)

    def __post_init__(self) -> None:
        for name in ("lead_in", "duration", "room_rms", "hum_amplitude"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"SoundLayout.{name}: expected 0 <= low <= high, got {(lo, hi)}")
        if self.duration[0] <= 0:
            raise ValueError(f"SoundLayout.duration: expected > 0, got {self.duration}")
        if self.aligned_prob + self.late_prob > 1:
            raise ValueError("SoundLayout: aligned_prob + late_prob must be <= 1")
        for name in ("aligned_prob", "late_prob", "hum_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SoundLayout.{name}: expected a probability, got {getattr(self, name)}")


#: Named layouts (``ToyWorld(sound_layout=...)`` accepts the names).
LAYOUTS = {
    "train": SoundLayout(),
    "offset": SoundLayout(lead_in=(0.0, 0.5), aligned_prob=0.0, late_prob=0.0),
}


def get_layout(layout: Union[None, str, dict, SoundLayout]) -> Optional[SoundLayout]:
    """None (onset-aligned), a name of :data:`LAYOUTS`, a mapping of
    :class:`SoundLayout` fields, or a layout."""
    if layout is None or isinstance(layout, SoundLayout):
        return layout
    if isinstance(layout, str):
        if layout == "onset":
            return None
        if layout not in LAYOUTS:
            raise ValueError(f"sound layout {layout!r}: expected 'onset' or one of {sorted(LAYOUTS)}")
        return LAYOUTS[layout]
    if isinstance(layout, dict):
        return SoundLayout(**{k: tuple(v) if isinstance(v, list) else v for k, v in layout.items()})
    raise ValueError(f"sound layout: expected None, a name, a mapping or a SoundLayout, got {layout!r}")


def room_noise(rng: np.random.Generator, n: int, sample_rate: int,
               layout: SoundLayout) -> Tuple[np.ndarray, bool]:
    """``n`` samples of room noise as ``layout`` draws it: white-to-pink noise
    at a random RMS, sometimes with mains hum; returns (float64 noise, hum?)."""
    rms = float(rng.uniform(*layout.room_rms))
    pink_share = float(rng.uniform(0.0, 1.0))
    white = rng.normal(0.0, 1.0, size=n)
    spectrum = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum = spectrum * ((1 - pink_share) + pink_share * np.sqrt(20.0 / np.maximum(f, 20.0)))
    noise = np.fft.irfft(spectrum, n)
    noise *= rms / max(float(np.sqrt(np.mean(noise**2))), 1e-12)
    hum = rng.uniform() < layout.hum_prob
    hum_amp, hum_phase = float(rng.uniform(*layout.hum_amplitude)), float(rng.uniform(0, 2 * np.pi))
    if hum:
        noise = noise + mains_hum(n, sample_rate, hum_amp, hum_phase)
    return noise, bool(hum)


def mains_hum(n: int, sample_rate: int, amplitude: float, phase: float = 0.0,
              hz: float = HUM_HZ) -> np.ndarray:
    """``n`` samples of a steady mains hum: ``hz`` with its 2nd and 3rd
    harmonics (weights 1, 0.3, 0.15), peak amplitude about ``amplitude``."""
    t = np.arange(n) / sample_rate
    wave = sum(w * np.sin(2 * np.pi * hz * k * t + k * phase)
               for k, w in ((1, 1.0), (2, 0.3), (3, 0.15)))
    return amplitude * wave / 1.45


_room_noise = room_noise  # earlier name


def windowed_sound(
    rng: np.random.Generator,
    shape: str,
    layout: SoundLayout,
    seconds: float = DEFAULT_SECONDS,
    sample_rate: int = SAMPLE_RATE,
    snr_db: float = SNR_DB,
) -> Tuple[np.ndarray, dict]:
    """A ``seconds`` clip laid out as ``layout`` says (module docstring).
    Returns the float32 clip and its facts: ``onset`` (s from the clip
    start, negative for a late start), ``duration`` (s of sound in the
    clip) and ``hum`` (bool).  Draws, in order: kind (aligned / late /
    lead-in), offset, duration, phase, amplitude, sound noise, room noise."""
    n = int(round(seconds * sample_rate))
    kind = float(rng.uniform())
    offset = float(rng.uniform(0.0, 1.0))
    duration = float(rng.uniform(*layout.duration))
    if kind < layout.aligned_prob:  # onset-aligned, the sound fills the clip
        onset, duration = 0.0, seconds
    elif kind < layout.aligned_prob + layout.late_prob:
        onset = -offset * layout.late_max
    else:
        lo, hi = layout.lead_in
        onset = lo + offset * (hi - lo)
    phase = float(rng.uniform(0, 2 * np.pi))
    amplitude = float(rng.uniform(*AMPLITUDE_RANGE))
    start = int(round(max(onset, 0.0) * sample_rate))
    stop = min(n, int(round((onset + duration) * sample_rate)))
    length = max(stop - start, 0)
    # time since the sound's onset of each sample of the sound part
    t = (start + np.arange(length)) / sample_rate - onset
    clean = amplitude * _waveform(shape, t, phase)
    fade = max(1, int(FADE_SECONDS * sample_rate))
    envelope = np.ones(length)
    if onset >= 0:
        envelope[:fade] = np.linspace(0.0, 1.0, min(fade, length))
    if stop < n:
        envelope[-fade:] = np.minimum(envelope[-fade:], np.linspace(1.0, 0.0, min(fade, length)))
    clean = clean * envelope
    noise_power = float(np.mean(clean**2)) / (10.0 ** (snr_db / 10.0)) if length else 0.0
    sound = clean + rng.normal(0.0, np.sqrt(noise_power), size=length)
    clip, hum = room_noise(rng, n, sample_rate, layout)
    clip[start:start + length] += sound
    facts = {"onset": round(onset, 4), "duration": round(length / sample_rate, 4), "hum": hum}
    return clip.astype(np.float32), facts
