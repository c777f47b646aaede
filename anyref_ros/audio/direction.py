"""Direction of arrival of a sound from a microphone array (SRP-PHAT), ROS-free.

Input: multi-channel audio (samples x channels, any rate 8-96 kHz) and the
array geometry ``mic_positions`` (channels x 3, metres, in the audio frame,
i.e. the frame named by the audio header's ``frame_id``). Output: the unit
vector pointing from the array towards the sound, in that frame
(:class:`Direction`), with a confidence.

Method
------
1. **Window** (bounded cost): only ``[onset - PRE_ONSET_S, onset - PRE_ONSET_S
   + WINDOW_S]`` (at most 1 s, clipped to the clip) is read, whatever the
   clip's length; ``onset_s`` is the sound's onset in seconds from the clip's
   first sample (default 0). The start of a sound is also where the direct
   sound dominates its echoes.
2. **Cross-spectra**: Hann frames of ``FRAME_S`` (rounded up to a power of
   two: 1024 samples at 16 kHz), half overlap; for every microphone pair
   ``(i, j)`` the cross-spectrum ``X_i X_j*`` averaged over the frames.
3. **Weighted PHAT**: each bin divided by its magnitude (only the phase,
   i.e. the delay, counts) and weighted by the pair's magnitude-squared
   coherence over the frames (about 1 / frames for bins of independent room
   noise, near 1 where one sound dominates: without it, the many noise-only
   bins drown a sound with few strong bins, e.g. a chirp). Only the bins in
   ``BAND_HZ`` (200 Hz to 8 kHz) are used: below 200 Hz a few centimetres of
   aperture give no usable phase and a steady mains hum (50/100/150 Hz, the
   same on every channel, so coherent) lives there; above 8 kHz most sounds
   have no energy left (at 16 kHz the band ends at 0.95 x Nyquist).
4. **GCC-PHAT**: each pair's generalised cross-correlation is evaluated at
   lags ``LAG_STEP_S`` (5 microseconds, 1.7 mm of path) apart over the
   pair's possible delays, normalised so that 1 is a perfectly coherent
   plane wave.
5. **SRP**: the steered response power of a direction ``d`` is the mean
   over pairs of their GCC at the delay ``d`` implies,
   ``tau_ij(d) = -((r_i - r_j) . d) / c`` (``c`` = 343 m/s); evaluated on a
   fixed Fibonacci grid of ``GRID_POINTS`` directions on the sphere (about
   4.5 degrees apart; GCC read by linear interpolation), then refined from
   the best grid point by three 9 x 9 patches of directions around it, each
   eight times finer (1, 0.125, 0.016 degrees apart; cubic interpolation,
   since a linear one puts every peak on a tabulated lag).
6. **Confidence**: the normalised SRP at the peak, in [0, 1]: about 1 for a
   single clean plane wave, about 0.05 for independent noise on every
   channel (measured: 0.98 for a toy sound at 10 dB SNR, 0.74 at 0 dB).

What an array cannot resolve (``Direction.resolved``)
-----------------------------------------------------
* ``"full"``: a volumetric array (microphones not in one plane): any
  direction.
* ``"hemisphere"``: a planar array (the spread of the microphones off their
  best-fit plane under 10 % of their largest spread) hears a sound and its
  mirror image through the plane alike. The direction returned is the one on
  the *upper* side of the plane: the side of +z of the audio frame; for a
  vertical plane, the side of +x, and for a plane containing both z and x,
  the side of +y (the first of z, x, y with a component of at least 0.1
  along the plane's normal).
* ``"cone"``: a linear array (a 2-mic pair, or collinear microphones) hears
  only the angle between the sound and its axis ``a``: every direction on a
  cone around ``a`` sounds alike (front/back and up/down ambiguity). The
  direction returned is on that cone, in the plane spanned by ``a`` and
  ``h``, on the side of ``h``, where ``h`` is horizontal and perpendicular to
  the axis (``z x a``), pointing to the front (+x; to the left, +y, when the
  axis is within about 6 degrees of x); for a vertical axis ``h`` = +x. For
  a horizontal pair this is the horizontal direction in front of (or, for a
  pair along x, to the left of) the pair.

Cost
----
Fixed per event: at most ``WINDOW_S`` of audio, a fixed grid, a bounded
refinement (``benchmarks/direction.py`` measures it; figures in the
README). Geometry-dependent tables and the work arrays are built once per
(geometry, rate) by :class:`DirectionFinder` (one call at a time per
finder: a lock).

Input checks
------------
ValueError for a malformed call (shape, channel count, rate, geometry,
onset, too little audio) or non-finite samples in the window;
:class:`NoDirection` (a ValueError) with its reason when the window holds no
sound to locate (all zeros, or no energy in the band on any pair). Samples
outside the window are never read (nor checked). A dead channel (all zeros)
only removes its pairs.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "SPEED_OF_SOUND", "WINDOW_S", "PRE_ONSET_S", "BAND_HZ", "MIN_RATE", "MAX_RATE", "MAX_CHANNELS",
    "MAX_APERTURE_M", "Direction", "NoDirection", "DirectionFinder", "estimate_direction",
    "mic_positions_from_flat",
]

SPEED_OF_SOUND = 343.0  # m/s
#: Longest stretch of audio used per event, seconds.
WINDOW_S = 1.0
#: The window starts this long before the given onset, seconds.
PRE_ONSET_S = 0.05
#: Frame length (rounded up to a power of two samples), seconds.
FRAME_S = 0.05
#: Frequencies used (Hz); the top is also capped at 0.95 x Nyquist.
BAND_HZ = (200.0, 8000.0)
#: Lag resolution of the tabulated GCC, seconds.
LAG_STEP_S = 5e-6
#: Directions of the search grid on the sphere.
GRID_POINTS = 2048
#: Refinement: the steps (degrees) of its three 9 x 9 patches.
REFINE_DEG = (1.0, 0.125, 0.015625)
MIN_RATE, MAX_RATE = 8000, 96000
MAX_CHANNELS = 32
#: Largest distance between two microphones accepted (metres).
MAX_APERTURE_M = 2.0
#: Spread off the best-fit plane (line) below this share of the largest
#: spread: the array counts as planar (linear).
FLAT_RATIO = 0.1


class NoDirection(ValueError):
    """The audio holds nothing to locate (all zeros, no energy in the band); the reason is the message."""


@dataclass(frozen=True)
class Direction:
    """Where a sound came from, in the audio frame."""

    vector: np.ndarray  #: (3,) unit vector from the array towards the sound
    confidence: float  #: normalised SRP at the peak, 0..1 (1 = one clean plane wave)
    resolved: str  #: "full", "hemisphere" (planar array) or "cone" (linear array); see the module doc
    window_s: Tuple[float, float]  #: the stretch of the clip used, seconds from its first sample
    #: "hemisphere": the array plane's normal; "cone": the array's axis; "full": None
    axis: Optional[np.ndarray] = None
    #: the array's centre (mean of the microphone positions), in the audio frame
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def alike(self, directions: np.ndarray) -> np.ndarray:
        """Every direction the array hears alike with :attr:`vector`, for each
        of ``directions`` (..., 3) unit vectors: the one of them mapped to the
        side this estimate reports (mirrored through the array's plane, or
        turned about its axis), so that ``alike(v) . vector`` is the cosine of
        the angle between ``v`` and the sound as far as the array can tell."""
        across = None
        if self.resolved == "cone":
            across = self.vector - (self.vector @ self.axis) * self.axis
            norm = np.linalg.norm(across)
            across = across / norm if norm > 1e-9 else across
        return fold(directions, self.resolved, self.axis, across)

    def angle_deg(self, directions: np.ndarray) -> np.ndarray:
        """Angle (degrees) between the sound and each of ``directions`` (..., 3),
        up to what the array cannot resolve (see :meth:`alike`)."""
        cos = np.clip(self.alike(directions) @ self.vector, -1.0, 1.0)
        return np.degrees(np.arccos(cos))

    @property
    def azimuth_deg(self) -> float:
        """Angle from +x towards +y, degrees in (-180, 180]."""
        return math.degrees(math.atan2(self.vector[1], self.vector[0]))

    @property
    def elevation_deg(self) -> float:
        """Angle above the x-y plane (towards +z), degrees."""
        return math.degrees(math.asin(max(-1.0, min(1.0, float(self.vector[2])))))


def mic_positions_from_flat(values: Sequence[float]) -> np.ndarray:
    """(N, 3) positions from a flat list ``x0, y0, z0, x1, ...`` (the form of
    a ROS double-array parameter); ValueError unless its length is 3 x N."""
    flat = np.asarray(list(values), dtype=np.float64)
    if flat.ndim != 1 or flat.size == 0 or flat.size % 3:
        raise ValueError(f"mic_positions: expected x, y, z of each channel (a multiple of 3 numbers), "
                         f"got {flat.size} numbers")
    return flat.reshape(-1, 3)


def fold(directions, resolved: str, axis: Optional[np.ndarray], side: Optional[np.ndarray] = None) -> np.ndarray:
    """``directions`` (..., 3) mapped onto the one of each set of directions an
    array hears alike: for a planar array (``"hemisphere"``, ``axis`` its
    plane's normal) mirrored to the normal's side of the plane; for a linear
    one (``"cone"``, ``axis`` its axis) turned about the axis into the
    half-plane of ``side`` (a unit vector perpendicular to the axis); a
    volumetric array (``"full"``) hears every direction apart."""
    v = np.asarray(directions, dtype=np.float64)
    if resolved == "hemisphere":
        v = v - 2.0 * np.minimum(v @ axis, 0.0)[..., None] * axis
    elif resolved == "cone":
        u = np.clip(v @ axis, -1.0, 1.0)
        v = u[..., None] * axis + np.sqrt(1.0 - u * u)[..., None] * side
    return v


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    rho = np.sqrt(1.0 - z * z)
    return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


def _oriented(v: np.ndarray, refs=((0, 0, 1), (1, 0, 0), (0, 1, 0))) -> np.ndarray:
    """``v`` with the sign making its component along the first of ``refs``
    with |component| >= 0.1 positive."""
    for ref in refs:
        c = float(np.dot(v, ref))
        if abs(c) >= 0.1:
            return v if c > 0 else -v
    return v


class DirectionFinder:
    """SRP-PHAT direction finder for one array geometry and sample rate
    (tables built once; :meth:`estimate` per event). See the module doc."""

    def __init__(self, mic_positions, sample_rate: int, speed_of_sound: float = SPEED_OF_SOUND):
        r = np.asarray(mic_positions, dtype=np.float64)
        if r.ndim != 2 or r.shape[1] != 3 or not 2 <= r.shape[0] <= MAX_CHANNELS:
            raise ValueError(f"mic_positions: expected (channels, 3) with 2..{MAX_CHANNELS} channels, "
                             f"got shape {r.shape}")
        if not np.all(np.isfinite(r)):
            raise ValueError("mic_positions: not finite")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
                or not MIN_RATE <= sample_rate <= MAX_RATE:
            raise ValueError(f"sample_rate: expected an integer in [{MIN_RATE}, {MAX_RATE}] Hz, got {sample_rate!r}")
        if not 200.0 <= speed_of_sound <= 2000.0:
            raise ValueError(f"speed_of_sound: expected 200..2000 m/s, got {speed_of_sound!r}")
        i, j = np.triu_indices(r.shape[0], 1)
        baselines = r[i] - r[j]
        lengths = np.linalg.norm(baselines, axis=1)
        if lengths.min() < 1e-3:
            raise ValueError("mic_positions: two microphones less than 1 mm apart")
        if lengths.max() > MAX_APERTURE_M:
            raise ValueError(f"mic_positions: microphones {lengths.max():.2f} m apart, more than "
                             f"{MAX_APERTURE_M} m; not a microphone array")
        self.mic_positions, self.sample_rate, self.c = r, int(sample_rate), float(speed_of_sound)
        self.channels = r.shape[0]
        self._pairs = (i, j)
        self._baselines = baselines

        # What the geometry can resolve.
        _, s, vt = np.linalg.svd(r - r.mean(axis=0))
        s = np.concatenate([s, np.zeros(3 - s.size)])
        self._fold_axis = self._side = None  # see fold()
        if s[1] < FLAT_RATIO * s[0]:
            self.resolved = "cone"
            axis = vt[0]
            h = np.cross((0.0, 0.0, 1.0), axis) if abs(axis[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
            h /= np.linalg.norm(h)
            self._fold_axis, self._side = axis, _oriented(h, ((1, 0, 0), (0, 1, 0)))
        elif s[2] < FLAT_RATIO * s[0]:
            self.resolved = "hemisphere"
            self._fold_axis = _oriented(vt[2])
        else:
            self.resolved = "full"

        # Frames and band.
        rate = self.sample_rate
        self.nfft = 1 << int(math.ceil(math.log2(FRAME_S * rate)))
        freqs = np.fft.rfftfreq(self.nfft, 1.0 / rate)
        top = min(BAND_HZ[1], 0.95 * rate / 2)
        bins = np.flatnonzero((freqs >= BAND_HZ[0]) & (freqs <= top))
        self._bins = slice(int(bins[0]), int(bins[-1]) + 1)
        self._window = np.hanning(self.nfft + 1)[:-1]

        # GCC table: lags covering every pair's possible delay (+ 3 steps).
        max_lag = lengths.max() / self.c + 3 * LAG_STEP_S
        self._lag0 = -max_lag
        self._nlag = int(math.ceil(2 * max_lag / LAG_STEP_S)) + 1
        lags = self._lag0 + LAG_STEP_S * np.arange(self._nlag)
        omega = 2 * np.pi * freqs[self._bins]
        phase = omega[:, None] * lags[None, :]  # (bins, lags)
        self._cos, self._sin = np.cos(phase), np.sin(phase)

        # Grid: fractional lag index of every (direction, pair).
        self._grid = _fibonacci_sphere(GRID_POINTS)
        self._grid_index = self._lag_index(self._grid)
        self._work = None  # see _buffers
        self._samples = np.empty((self.channels, int(round(WINDOW_S * rate))))
        self._lock = threading.Lock()

    # -- SRP evaluation --------------------------------------------------
    def _lag_index(self, directions: np.ndarray):
        tau = -(directions @ self._baselines.T) / self.c  # (G, pairs)
        pos = (tau - self._lag0) / LAG_STEP_S
        lo = np.clip(np.floor(pos).astype(np.int64), 1, self._nlag - 3)
        frac = pos - lo
        return lo + self._nlag * np.arange(self._baselines.shape[0])[None, :], frac

    def _srp(self, cc_flat: np.ndarray, index) -> np.ndarray:
        """Sum over pairs of the GCC at each direction's delays (cubic,
        Catmull-Rom interpolation between lags: a linear one would put
        every peak on a tabulated lag)."""
        lo, t = index
        p0, p1, p2, p3 = cc_flat[lo - 1], cc_flat[lo], cc_flat[lo + 1], cc_flat[lo + 2]
        value = p1 + 0.5 * t * (p2 - p0 + t * (2 * p0 - 5 * p1 + 4 * p2 - p3 + t * (3 * (p1 - p2) + p3 - p0)))
        return value.sum(axis=1)

    def _refine(self, cc_flat: np.ndarray, d: np.ndarray, value: float):
        """Best of a 9 x 9 patch of directions around ``d`` on its tangent
        plane, three times, each patch 8 times finer (steps REFINE_DEG)."""
        e1 = np.cross(d, (1.0, 0.0, 0.0) if abs(d[0]) < 0.9 else (0.0, 1.0, 0.0))
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(d, e1)
        offsets = np.stack(np.meshgrid(np.arange(-4, 5), np.arange(-4, 5)), -1).reshape(-1, 2)
        for step in REFINE_DEG:
            patch = d + math.radians(step) * (offsets[:, :1] * e1 + offsets[:, 1:] * e2)
            patch /= np.linalg.norm(patch, axis=1, keepdims=True)
            values = self._srp(cc_flat, self._lag_index(patch))
            k = int(np.argmax(values))
            if values[k] > value:
                d, value = patch[k], float(values[k])
        return d, value

    # -- the public call -------------------------------------------------
    def window(self, n_samples: int, onset_s: float = 0.0) -> Tuple[int, int]:
        """Sample range ``[start, stop)`` of a clip of ``n_samples`` that
        :meth:`estimate` reads for a sound with onset ``onset_s``."""
        if not isinstance(onset_s, (int, float, np.floating, np.integer)) or not math.isfinite(onset_s) \
                or not 0.0 <= onset_s < n_samples / self.sample_rate:
            raise ValueError(f"onset_s: expected seconds within the clip [0, {n_samples / self.sample_rate:.3f}), "
                             f"got {onset_s!r}")
        start = max(0, int(round((onset_s - PRE_ONSET_S) * self.sample_rate)))
        return start, min(n_samples, start + int(round(WINDOW_S * self.sample_rate)))

    def estimate(self, audio: np.ndarray, onset_s: float = 0.0) -> Direction:
        """The direction of the sound in ``audio`` ((samples, channels), float
        or integer PCM) whose onset is ``onset_s`` seconds after its first
        sample. Raises ValueError (malformed input, non-finite samples) or
        :class:`NoDirection` (nothing to locate)."""
        if not isinstance(audio, np.ndarray) or audio.ndim != 2 or audio.dtype.kind not in "fiu":
            raise ValueError(f"audio: expected a numeric numpy array (samples, channels), got "
                             f"{type(audio).__name__} {getattr(audio, 'shape', '')}")
        if audio.shape[1] != self.channels:
            raise ValueError(f"audio: {audio.shape[1]} channels, but mic_positions has {self.channels}")
        start, stop = self.window(audio.shape[0], onset_s)
        if stop - start < self.nfft // 2:
            raise ValueError(f"audio: {stop - start} samples from the onset on; at least {self.nfft // 2} "
                             f"({self.nfft / 2 / self.sample_rate * 1000:.0f} ms) are needed")
        with self._lock:  # one call at a time: the work arrays are shared
            return self._estimate(audio, start, stop)

    def _estimate(self, audio: np.ndarray, start: int, stop: int) -> Direction:
        x = self._samples[:, :stop - start]  # (channels, samples)
        np.copyto(x, audio[start:stop].T, casting="unsafe")
        if not np.all(np.isfinite(x)):
            raise ValueError("audio: non-finite samples (NaN or inf) in the window used")
        if not np.any(x):
            raise NoDirection("all-zero audio: nothing to locate")
        x -= x.mean(axis=1, keepdims=True)
        cc_flat, active = self._gcc(x)
        if not active:
            raise NoDirection("no energy in the band used on any microphone pair")
        lo, frac = self._grid_index  # linear interpolation on the grid: cheaper, the refinement is cubic
        values = (cc_flat[lo] * (1.0 - frac) + cc_flat[lo + 1] * frac).sum(axis=1)
        k = int(np.argmax(values))
        d, value = self._refine(cc_flat, self._grid[k], float(values[k]))
        return Direction(self._canonical(d), float(np.clip(value / active, 0.0, 1.0)), self.resolved,
                         (start / self.sample_rate, stop / self.sample_rate), self._fold_axis,
                         self.mic_positions.mean(axis=0))

    def _buffers(self, frames: int):
        """Work arrays for ``frames`` frames, kept between calls: allocating
        these ~1 MB arrays afresh costs page faults worth more than the maths."""
        if self._work is None or self._work[0].shape[1] != frames:
            m, n, k = self.channels, self.nfft, self._cos.shape[0]
            self._work = (np.empty((m, frames, n)), np.empty((m, frames, n // 2 + 1), complex),
                          np.empty((k, m, frames), complex), np.empty((k, frames, m), complex),
                          np.empty((k, m, m), complex))
        return self._work

    def _gcc(self, x: np.ndarray):
        """Flattened (pairs x lags) coherence-weighted PHAT cross-correlations,
        each normalised by its total weight (so 1 = one coherent plane wave;
        0 for a pair without energy), and the count of pairs with energy.
        ``x``: (channels, samples)."""
        n, hop = self.nfft, self.nfft // 2
        if x.shape[1] < n:
            x = np.concatenate([x, np.zeros((x.shape[0], n - x.shape[1]))], axis=1)
        view = np.lib.stride_tricks.sliding_window_view(x, n, axis=1)[:, ::hop]
        frames, spectra, by_bin, conj_t, spectral = self._buffers(view.shape[1])
        np.multiply(view, self._window, out=frames)
        np.fft.rfft(frames, axis=-1, out=spectra)  # (M, F, bins)
        np.copyto(by_bin, spectra[:, :, self._bins].transpose(2, 0, 1))  # (K, M, F)
        np.conjugate(by_bin.transpose(0, 2, 1), out=conj_t)
        np.matmul(by_bin, conj_t, out=spectral)  # (K, M, M), summed over frames
        i, j = self._pairs
        cross = spectral[:, i, j].T  # (pairs, K)
        power = np.einsum("kmm->mk", spectral).real  # (M, K)
        # Weight of a bin: the pair's magnitude-squared coherence over the
        # frames (about 1 / frames for noise, near 1 where one sound dominates).
        denominator = power[i] * power[j]
        used = denominator > 1e-24 * max(float(denominator.max()), 1e-300)
        mag = np.abs(cross)
        weight = np.where(used, mag * mag / np.where(used, denominator, 1.0), 0.0)
        phat = np.where(used, cross / np.where(used, mag, 1.0), 0.0) * weight
        counts = weight.sum(axis=1)
        # Re(phat exp(j omega tau)); einsum, not BLAS: no thread pool to wait for.
        cc = (np.einsum("pk,kl->pl", phat.real, self._cos, optimize=False)
              - np.einsum("pk,kl->pl", phat.imag, self._sin, optimize=False))
        cc /= np.where(counts > 0, counts, 1.0)[:, None]
        return cc.ravel(), int(np.count_nonzero(counts))

    def _canonical(self, d: np.ndarray) -> np.ndarray:
        d = fold(d, self.resolved, self._fold_axis, self._side)
        return d / np.linalg.norm(d)


@lru_cache(maxsize=8)
def _finder(positions: tuple, sample_rate: int, speed_of_sound: float) -> DirectionFinder:
    return DirectionFinder(np.array(positions).reshape(-1, 3), sample_rate, speed_of_sound)


def finder_for(mic_positions, sample_rate: int, speed_of_sound: float = SPEED_OF_SOUND) -> DirectionFinder:
    """The :class:`DirectionFinder` of a (geometry, rate, speed of sound),
    built once and cached (ValueError for a geometry that is no array)."""
    positions = tuple(float(v) for v in np.asarray(mic_positions, dtype=np.float64).ravel())
    if len(positions) % 3:
        raise ValueError("mic_positions: expected (channels, 3)")
    return _finder(positions, sample_rate, float(speed_of_sound))


def estimate_direction(audio: np.ndarray, sample_rate: int, mic_positions, onset_s: float = 0.0,
                       speed_of_sound: float = SPEED_OF_SOUND) -> Direction:
    """:meth:`DirectionFinder.estimate` with the cached finder of :func:`finder_for`."""
    return finder_for(mic_positions, sample_rate, speed_of_sound).estimate(audio, onset_s)
