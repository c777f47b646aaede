"""Small, dependency-free signal helpers: mono mix, resampling, block level.

Everything here is plain numpy, ROS-free and safe to call with numbers that
come from the outside world (a microphone driver, a ROS message, a service
request): every cost is bounded before any work starts.

Resampling design
-----------------
``resample`` is a band-limited (windowed-sinc) interpolator evaluated at the
*exact* fractional input position of every output sample::

    y[m] = sum_k x[k] * fc * h(fc * (k - m * src / dst))

where ``h(u) = sinc(u) * kaiser(u / ZERO_CROSSINGS)`` is tabulated once
(``TABLE_STEPS`` points per zero crossing, linear interpolation between
points) and ``fc = ROLLOFF * min(src, dst) / src`` puts the cut-off just below
the lower of the two Nyquist frequencies, so downsampling is anti-aliased.

Unlike a rational polyphase resampler (``torchaudio.functional.resample``),
whose kernel bank has ``dst / gcd(src, dst)`` phases -- 16000 phases for
16001 -> 16000 Hz, i.e. gigabytes -- the cost here does not depend on the
rates' common factors: each output sample uses ``2 * ceil(ZERO_CROSSINGS /
fc)`` taps (34 taps when upsampling or for nearly equal rates, ~100 for
48 kHz -> 16 kHz), so the total work is O(len(input) + len(output)) times
``ZERO_CROSSINGS``. Output is produced in blocks of about ``BLOCK_ELEMENTS``
(output samples x taps), so peak extra memory is a few MB plus the padded
copy of the input and the output array itself.

The signal is taken as zero outside the given samples (as torchaudio does),
so the first and last ~ZERO_CROSSINGS / fc input samples are slightly
attenuated at the edges of a clip.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "MIN_RATE", "MAX_RATE", "MAX_INPUT_SECONDS", "ZERO_CROSSINGS", "ROLLOFF", "FLOOR_DB",
    "to_mono", "resample", "resample_span", "kernel_half_width", "rms_db", "check_rate",
]

#: Accepted sample rates (Hz) for :func:`resample`, inclusive.
MIN_RATE = 1000
MAX_RATE = 384000
#: Longest input :func:`resample` accepts, in seconds at the source rate.
MAX_INPUT_SECONDS = 600.0
#: Half-width of the interpolation kernel, in zero crossings of the sinc.
ZERO_CROSSINGS = 16
#: Cut-off as a fraction of the lower Nyquist frequency (leaves room for the
#: filter's transition band so frequencies just above Nyquist are rejected).
ROLLOFF = 0.95
#: Kaiser window shape (about 80 dB stop-band attenuation).
KAISER_BETA = 8.6
#: Kernel table resolution: points per zero crossing.
TABLE_STEPS = 512
#: Work per block, in (output samples x taps) elements: bounds peak memory.
BLOCK_ELEMENTS = 1 << 19
#: Level reported by :func:`rms_db` for silence (dBFS).
FLOOR_DB = -120.0

_TABLE = None  # (values, slopes), built on first use


def _kernel_table():
    """Windowed sinc ``h(u)`` for ``u`` in [0, ZERO_CROSSINGS], tabulated."""
    global _TABLE
    if _TABLE is None:
        u = np.arange(ZERO_CROSSINGS * TABLE_STEPS + 2, dtype=np.float64) / TABLE_STEPS
        window = np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - (u / ZERO_CROSSINGS) ** 2, 0.0, 1.0)))
        values = np.sinc(u) * window / np.i0(KAISER_BETA)
        values[u >= ZERO_CROSSINGS] = 0.0
        slopes = np.append(np.diff(values), 0.0)
        _TABLE = (values.astype(np.float32), slopes.astype(np.float32))
    return _TABLE


def check_rate(rate, name: str = "sample_rate", lo: int = MIN_RATE, hi: int = MAX_RATE) -> int:
    """Return ``rate`` as an int if it is an integer in [lo, hi] Hz, else raise
    ValueError naming the accepted range."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer sample rate in Hz within [{lo}, {hi}], got {rate!r}")
    if not lo <= int(rate) <= hi:
        raise ValueError(f"{name}: {int(rate)} Hz is outside the accepted range [{lo}, {hi}] Hz; "
                         f"resample the audio to a rate in that range first")
    return int(rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mix ``samples`` of shape (n,) or (n, channels) to float32 (n,).

    Channels are averaged. Float input keeps its values. Integer PCM is scaled
    to full scale [-1, 1): signed types are divided by 2**(bits-1) (int16
    32767 -> 0.99997), unsigned types are centred first (uint8 128 -> 0.0).
    Raises ValueError for other shapes, zero channels, or non-numeric dtypes.
    """
    if not isinstance(samples, np.ndarray):
        raise ValueError(f"samples: expected a numpy array (n,) or (n, channels), got {type(samples).__name__}")
    kind = samples.dtype.kind
    if kind not in "fiu":
        raise ValueError(f"samples: expected float or integer PCM samples, got dtype {samples.dtype}")
    if samples.ndim not in (1, 2) or (samples.ndim == 2 and samples.shape[1] == 0):
        raise ValueError(f"samples: expected shape (n,) or (n, channels) with channels >= 1, got {samples.shape}")
    if kind == "f":
        x = samples
    else:
        half = float(2 ** (8 * samples.dtype.itemsize - 1))
        x = samples.astype(np.float64)
        if kind == "u":
            x -= half
        x /= half
    if x.ndim == 2:
        x = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float64)
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample 1-D audio ``x`` from ``src_rate`` to ``dst_rate`` Hz.

    Returns float32 of length ``ceil(len(x) * dst_rate / src_rate)``; equal
    rates return ``x`` as float32 (the same object when it already is).
    Rates must be integers in [MIN_RATE, MAX_RATE]; ``x`` may hold at most
    MAX_INPUT_SECONDS of audio at ``src_rate``; both are checked before any
    work (ValueError). Non-finite samples are not checked here: a NaN spreads
    to the ~2 * ZERO_CROSSINGS output samples around it. See the module
    docstring for the method and its cost.
    """
    src = check_rate(src_rate, "src_rate")
    dst = check_rate(dst_rate, "dst_rate")
    if not isinstance(x, np.ndarray) or x.ndim != 1 or x.dtype.kind not in "fiu":
        shape = getattr(x, "shape", None)
        raise ValueError(f"x: expected a 1-D numeric numpy array (use to_mono first), got "
                         f"{type(x).__name__} with shape {shape}")
    n_in = x.shape[0]
    if n_in > MAX_INPUT_SECONDS * src:
        raise ValueError(f"x: {n_in} samples at {src} Hz is {n_in / src:.1f} s, longer than the "
                         f"{MAX_INPUT_SECONDS:g} s accepted; cut it into pieces first")
    x = np.asarray(x, dtype=np.float32)
    if src == dst:
        return x
    return resample_span(x, 0, src, dst, 0, -(-n_in * dst // src))


def resample_span(x: np.ndarray, x_start: int, src: int, dst: int, m0: int, m1: int) -> np.ndarray:
    """Output samples ``m0 <= m < m1`` of resampling a stream ``src`` -> ``dst`` Hz
    of which ``x`` holds the input samples ``x_start, x_start + 1, ...`` (zero
    elsewhere): what :func:`resample` of the whole stream would give there.

    The streaming form of :func:`resample` (same kernel, same exact position
    ``m * src / dst`` of every output): its cost is the taps of ``m1 - m0``
    outputs, whatever the rates' common factors and wherever ``x`` starts.
    Output m needs the input samples ``floor(m * src / dst) - half + 1`` to
    ``floor(m * src / dst) + half``, ``half = ceil(ZERO_CROSSINGS / fc)``
    (:func:`kernel_half_width`); missing ones count as zero. Rates are not
    checked here (use :func:`resample`, or check them once with :func:`check_rate`).
    """
    n_out = max(0, int(m1) - int(m0))
    out = np.empty(n_out, dtype=np.float32)
    if n_out == 0:
        return out
    x = np.asarray(x, dtype=np.float32)
    values, slopes = _kernel_table()
    fc = ROLLOFF * min(src, dst) / src  # cut-off in cycles per input sample x 2
    half = kernel_half_width(src, dst)  # taps on each side
    taps = np.arange(-half + 1, half + 1, dtype=np.int64)  # 2 * half taps
    # Input samples first - half + 1 .. last + half, zero outside x.
    first, last = int(m0) * src // dst, (int(m1) - 1) * src // dst
    lo = first - half + 1  # input index of padded[0]
    padded = np.zeros(last - first + 2 * half, dtype=np.float32)
    a, b = max(lo, x_start), min(lo + padded.size, x_start + x.shape[0])
    if a < b:
        padded[a - lo: b - lo] = x[a - x_start: b - x_start]
    scale = np.float32(fc * TABLE_STEPS)
    limit = ZERO_CROSSINGS * TABLE_STEPS
    block = max(1, BLOCK_ELEMENTS // taps.size)
    for j0 in range(0, n_out, block):
        m = np.arange(int(m0) + j0, int(m0) + min(j0 + block, n_out), dtype=np.int64)
        num = m * src  # exact position m * src / dst = base + rem / dst
        base = num // dst
        frac = ((num - base * dst) / dst).astype(np.float32)
        # distance (in table steps) between each tap and the exact position
        u = np.abs(taps.astype(np.float32)[None, :] - frac[:, None])
        u *= scale
        idx = u.astype(np.int32)
        np.minimum(idx, limit, out=idx)
        u -= idx
        w = values[idx]
        w += u * slopes[idx]
        # gather: rows of the 2*half input samples base - half + 1 .. base + half
        rows = padded[(base - lo)[:, None] + taps[None, :]]
        out[j0: j0 + m.size] = np.einsum("ij,ij->i", rows, w) * np.float32(fc)
    return out


def kernel_half_width(src: int, dst: int) -> int:
    """Input samples on each side of an output position that its value uses."""
    return int(math.ceil(ZERO_CROSSINGS / (ROLLOFF * min(src, dst) / src)))


def rms_db(x) -> float:
    """RMS level of a block in dBFS (a full-scale sine is about -3 dB).

    Returns FLOOR_DB (-120) for an empty or silent block, never less.
    Raises ValueError if the block holds NaN or infinity.
    """
    a = np.asarray(x)
    if a.size == 0:
        return FLOOR_DB
    ms = float(np.mean(np.square(a, dtype=np.float64)))
    if not math.isfinite(ms):
        raise ValueError("rms_db: the block holds NaN or infinite samples")
    if ms <= 0.0:
        return FLOOR_DB
    return max(FLOOR_DB, 10.0 * math.log10(ms))
