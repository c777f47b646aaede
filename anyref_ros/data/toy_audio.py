"""Toy world sounds: one signature sound per shape.

* circle: 440 Hz sine
* square: 220 Hz square wave
* triangle: linear chirp from 300 Hz to 1200 Hz, restarting every second

Each clip: float32 mono at 16 kHz, random start phase (sine, square), peak
amplitude uniform in [0.3, 0.8], plus white Gaussian noise at 10 dB SNR
(noise power = mean signal power / 10).
"""

from __future__ import annotations

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
