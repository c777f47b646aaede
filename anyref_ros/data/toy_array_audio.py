"""Toy microphone-array audio: one sound heard by every channel of an array.

ROS-free simulation for tests and evaluation of direction finding
(:mod:`anyref_ros.audio.direction`).

* Geometry: ``mic_positions`` (N x 3, metres, in the audio frame), any array.
* Propagation: free field, speed of sound ``c``. A **far-field** source in
  the unit direction ``d`` reaches channel ``i`` at ``tau_i = -(r_i . d) / c``
  seconds relative to the frame origin (a microphone further along ``d`` hears
  it first). A **near-field** source at ``s`` reaches it at
  ``|s - r_i| / c`` minus the time to the array centre, with a ``1 / distance``
  gain (relative to the centre).
* Delays are **fractional**: each channel is delayed in the frequency domain
  (``X(f) exp(-2 pi j f tau)``, zero-padded so that nothing wraps around, the
  Nyquist bin dropped), which is exact for band-limited sound.
* Room noise is independent per channel (white-to-pink, as the toy world's
  :func:`~anyref_ros.data.toy_audio.room_noise`) at ``snr_db`` below the
  sound's mean power per channel; an optional steady mains hum
  (:func:`~anyref_ros.data.toy_audio.mains_hum`, 50 Hz with its 100/150 Hz
  harmonics) is common to all channels (an electrical hum reaches every
  channel at once), ``hum_db`` relative to the sound's power.

The sounds are the toy world's signature sounds
(:func:`~anyref_ros.data.toy_audio.shape_sound`), or any mono signal.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from anyref_ros.data.toy_audio import SAMPLE_RATE, SoundLayout, mains_hum, room_noise, shape_sound

SPEED_OF_SOUND = 343.0  # m/s, dry air at about 20 degC


def unit_vector(azimuth_deg: float, elevation_deg: float = 0.0) -> np.ndarray:
    """Unit vector at ``azimuth_deg`` (from +x towards +y) and
    ``elevation_deg`` (towards +z) in the audio frame."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def far_field_delays(mic_positions, direction, c: float = SPEED_OF_SOUND) -> np.ndarray:
    """Arrival time of a plane wave from unit ``direction`` at each
    microphone, in seconds relative to the frame origin: ``-(r_i . d) / c``."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    return -(np.asarray(mic_positions, dtype=np.float64) @ d) / c


def near_field_delays(mic_positions, position, c: float = SPEED_OF_SOUND):
    """(delays in s relative to the array centre, gains relative to the
    centre) of a point source at ``position`` (metres, audio frame)."""
    r = np.asarray(mic_positions, dtype=np.float64)
    s = np.asarray(position, dtype=np.float64)
    dist = np.linalg.norm(s[None, :] - r, axis=1)
    ref = float(np.linalg.norm(s - r.mean(axis=0)))
    return (dist - ref) / c, ref / dist


def delay_channels(sound: np.ndarray, delays_s: Sequence[float], sample_rate: int,
                   gains: Optional[Sequence[float]] = None) -> np.ndarray:
    """(n, channels) float64: mono ``sound`` (n,) delayed by each of
    ``delays_s`` (seconds, fractional, negative = earlier) and scaled by
    ``gains``. Samples shifted in from outside the clip are zero."""
    x = np.asarray(sound, dtype=np.float64)
    delays = np.asarray(delays_s, dtype=np.float64)
    g = np.ones_like(delays) if gains is None else np.asarray(gains, dtype=np.float64)
    n = x.shape[0]
    pad = int(np.ceil(np.max(np.abs(delays)) * sample_rate)) + 32
    size = n + 2 * pad
    spectrum = np.fft.rfft(np.concatenate([np.zeros(pad), x, np.zeros(pad)]))
    f = np.fft.rfftfreq(size, 1.0 / sample_rate)
    shifted = spectrum[None, :] * np.exp(-2j * np.pi * f[None, :] * delays[:, None]) * g[:, None]
    if size % 2 == 0:
        shifted[:, -1] = 0.0  # a fractional delay of the Nyquist bin is not real
    return np.fft.irfft(shifted, size, axis=1)[:, pad:pad + n].T


def array_audio(
    rng: np.random.Generator,
    sound: np.ndarray,
    mic_positions,
    direction=None,
    position=None,
    sample_rate: int = SAMPLE_RATE,
    snr_db: Optional[float] = 20.0,
    hum_db: Optional[float] = None,
    c: float = SPEED_OF_SOUND,
) -> np.ndarray:
    """(n, channels) float32: mono ``sound`` heard by the array from unit
    ``direction`` (far field) or from ``position`` (near field, metres),
    plus independent room noise at ``snr_db`` (None = none) and a common
    mains hum ``hum_db`` relative to the sound's power (None = none).
    Draws, in order: each channel's room noise, the hum's phase."""
    if (direction is None) == (position is None):
        raise ValueError("array_audio: give exactly one of direction (far field) or position (near field)")
    r = np.asarray(mic_positions, dtype=np.float64)
    if direction is not None:
        delays, gains = far_field_delays(r, direction, c), None
    else:
        delays, gains = near_field_delays(r, position, c)
    clip = delay_channels(sound, delays, sample_rate, gains)
    n, channels = clip.shape
    power = float(np.mean(clip ** 2))
    if snr_db is not None:
        rms = float(np.sqrt(power / 10.0 ** (snr_db / 10.0)))
        layout = SoundLayout(room_rms=(rms, rms), hum_prob=0.0)
        for ch in range(channels):
            clip[:, ch] += room_noise(rng, n, sample_rate, layout)[0]
    if hum_db is not None:
        # mains_hum's power is about 0.5 * (1 + 0.3^2 + 0.15^2) / 1.45^2 of amplitude^2
        hum_power = 0.5 * (1 + 0.09 + 0.0225) / 1.45 ** 2
        amplitude = float(np.sqrt(power * 10.0 ** (hum_db / 10.0) / hum_power))
        clip += mains_hum(n, sample_rate, amplitude, float(rng.uniform(0, 2 * np.pi)))[:, None]
    return clip.astype(np.float32)


def shape_array_audio(
    rng: np.random.Generator,
    shape: str,
    mic_positions,
    direction=None,
    position=None,
    seconds: float = 1.0,
    sample_rate: int = SAMPLE_RATE,
    snr_db: Optional[float] = 20.0,
    hum_db: Optional[float] = None,
) -> np.ndarray:
    """The toy world's signature sound of ``shape``
    (:func:`~anyref_ros.data.toy_audio.shape_sound`) heard by the array
    (:func:`array_audio`)."""
    sound = shape_sound(rng, shape, seconds, sample_rate)
    return array_audio(rng, sound, mic_positions, direction, position, sample_rate, snr_db, hum_db)
