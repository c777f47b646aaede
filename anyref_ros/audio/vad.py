"""Voice activity detection and utterance segmentation, streaming, ROS-free.

Pieces
------
* :class:`SileroVAD`: the Silero VAD network (PyPI ``silero-vad``) scoring
  each 32 ms window (512 samples at 16 kHz) with a speech probability. Its
  weights ship inside the wheel as ``silero_vad/data/silero_vad_16k.safetensors``
  and are loaded here with safetensors into a numpy implementation of that
  file's layout (STFT as a projection, four conv layers, an LSTM cell, a
  1x1 output + sigmoid). The package's own loader goes through
  ``torch.jit.load`` (an archive that carries code, deprecated in our torch),
  which this project does not use for model files; and torch's thread pool
  made each 32 ms window cost 15 ms on a busy 2-core machine (numpy: under
  1 ms). Nothing is downloaded; the ``silero_vad`` package itself is never
  imported (its import sets torch's global thread count).
* :class:`StreamResampler`: any input rate to 16 kHz, chunk by chunk, with the
  same output as resampling the whole stream at once
  (:func:`anyref_ros.audio.signal.resample_span` at the exact stream
  positions, so chunk edges are not attenuated), at a cost proportional to
  the samples whatever the rates.
* :class:`UtteranceSegmenter`: windows -> utterances. Speech starts when a
  window's probability reaches ``threshold`` and ends after ``end_silence_s``
  of windows below ``threshold - 0.15``; each utterance carries
  ``pre_roll_s`` of audio from before its start and its trailing silence.
  Utterances shorter than ``min_utterance_s`` or longer than
  ``max_utterance_s`` (speech time, measured on whole windows with
  :data:`LENGTH_SLACK_S` of slack for the VAD's own timing) come back with a
  verdict saying so, and without their audio, so the caller can log and drop
  them. Memory is bounded by ``max_utterance_s`` whatever arrives. An
  utterance's audio may exceed ``max_utterance_s`` by its pre-roll and
  trailing silence; :meth:`Utterance.audio_at_most` trims those to fit a
  recogniser's limit without cutting the speech.

Times are seconds on the stream's own sample clock (samples pushed at 16 kHz
since the last :meth:`UtteranceSegmenter.reset`), which the caller maps to
its clock (the ROS node adds the stamp of the stream's first chunk).
"""

from __future__ import annotations

import importlib.util
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .signal import check_rate, kernel_half_width, resample_span

__all__ = [
    "SAMPLE_RATE", "WINDOW", "WEIGHTS_FILE", "LENGTH_SLACK_S", "weights_path", "SileroVAD", "StreamResampler",
    "Utterance", "UtteranceSegmenter",
]

#: The rate the VAD (and the recognizers) work at.
SAMPLE_RATE = 16000
#: Samples per VAD window (32 ms at 16 kHz).
WINDOW = 512
#: Samples of the previous window the network sees before each window.
CONTEXT = 64
WEIGHTS_FILE = "silero_vad_16k.safetensors"
#: Hysteresis: speech continues while the probability stays above threshold - this.
HYSTERESIS = 0.15
#: Speech is measured on whole windows, and the VAD's start and end of a word are
#: off by up to ~0.1 s each (measured on espeak-ng speech): speech is too long only
#: past max_utterance_s + this, so speech of exactly max_utterance_s is kept.
LENGTH_SLACK_S = 0.25


def weights_path() -> Path:
    """The safetensors file shipped in the ``silero-vad`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "data" / WEIGHTS_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"silero-vad's {WEIGHTS_FILE} was not found; install it without its extras: "
        "pip install --no-deps silero-vad==6.2.3 (see requirements/nodeps.txt)")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def _conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """1-D convolution, kernel 3, padding 1: x (C_in, L) -> (C_out, L_out)."""
    c_out, c_in, k = weight.shape
    padded = np.pad(x, ((0, 0), (1, 1)))
    n = (padded.shape[1] - k) // stride + 1
    cols = np.stack([padded[:, t * stride: t * stride + k].reshape(-1) for t in range(n)], axis=1)
    return weight.reshape(c_out, c_in * k) @ cols + bias[:, None]


class _SileroNet:
    """The Silero VAD 16 kHz network in numpy (float32): a 256-point STFT with
    hop 128 as a fixed projection (129 real + 129 imaginary rows), four
    kernel-3 convolutions with ReLU (strides 1, 2, 2, 1), an LSTM cell
    (128 units) and a 1x1 output layer with a sigmoid."""

    LAYOUT = {
        "stft_conv.weight": (258, 1, 256),
        "conv1.weight": (128, 129, 3), "conv1.bias": (128,),
        "conv2.weight": (64, 128, 3), "conv2.bias": (64,),
        "conv3.weight": (64, 64, 3), "conv3.bias": (64,),
        "conv4.weight": (128, 64, 3), "conv4.bias": (128,),
        "lstm_cell.weight_ih": (512, 128), "lstm_cell.weight_hh": (512, 128),
        "lstm_cell.bias_ih": (512,), "lstm_cell.bias_hh": (512,),
        "final_conv.weight": (1, 128, 1), "final_conv.bias": (1,),
    }

    def __init__(self, weights: Path) -> None:
        from safetensors.numpy import load_file

        w = load_file(str(weights))
        wrong = {k: (tuple(w[k].shape) if k in w else None) for k, shape in self.LAYOUT.items()
                 if k not in w or tuple(w[k].shape) != shape}
        if wrong:
            raise ValueError(f"{weights} does not hold the Silero VAD 16 kHz layout this code expects "
                             f"(mismatched: {wrong}); install silero-vad==6.2.3")
        w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in w.items()}
        self.stft = w["stft_conv.weight"][:, 0, :]
        self.convs = [(w[f"conv{i}.weight"], w[f"conv{i}.bias"], stride)
                      for i, stride in ((1, 1), (2, 2), (3, 2), (4, 1))]
        self.w_ih, self.w_hh = w["lstm_cell.weight_ih"], w["lstm_cell.weight_hh"]
        self.b = w["lstm_cell.bias_ih"] + w["lstm_cell.bias_hh"]
        self.w_out, self.b_out = w["final_conv.weight"][0, :, 0], w["final_conv.bias"][0]
        frames = (CONTEXT + WINDOW + 64 - 256) // 128 + 1
        self.frame_index = np.arange(frames)[:, None] * 128 + np.arange(256)[None, :]

    def __call__(self, x: np.ndarray, h: np.ndarray, c: np.ndarray):
        """x: CONTEXT + WINDOW samples; returns (probability, h, c)."""
        x = np.pad(x, (0, 64), mode="reflect")
        spec = self.stft @ x[self.frame_index].T  # (258, frames)
        y = np.sqrt(spec[:129] ** 2 + spec[129:] ** 2)
        for weight, bias, stride in self.convs:
            y = np.maximum(_conv1d(y, weight, bias, stride), 0.0)
        gates = self.w_ih @ y[:, 0] + self.w_hh @ h + self.b
        i, f, g, o = np.split(gates, 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        p = _sigmoid(self.w_out @ np.maximum(h, 0.0) + self.b_out)
        return float(p), h.astype(np.float32), c.astype(np.float32)


class SileroVAD:
    """Streaming speech probability of consecutive 512-sample windows at 16 kHz.

    Call it with each window in order; :meth:`reset` starts a new stream.
    Samples are clipped to full scale [-1, 1] (NaN counts as 0) before the
    network; should its state or probability still turn non-finite, the
    state is reset, the window scores 0 and :attr:`non_finite_resets` counts it.
    A window costs well under a millisecond of one core and no thread pool,
    so the VAD never competes with torch or the recogniser for cores.
    """

    def __init__(self, weights: Optional[Path] = None) -> None:
        self._net = _SileroNet(Path(weights) if weights is not None else weights_path())
        #: Times the network's state or probability turned non-finite and was reset
        #: (never cleared by :meth:`reset`: a count for the stream's whole life).
        self.non_finite_resets = 0
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros(128, dtype=np.float32)
        self._c = np.zeros(128, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def __call__(self, window: np.ndarray) -> float:
        window = np.asarray(window, dtype=np.float32)
        if window.shape != (WINDOW,):
            raise ValueError(f"window: expected {WINDOW} samples at {SAMPLE_RATE} Hz, got shape {window.shape}")
        # Full scale is [-1, 1]: louder samples (a driver's garbage, 1e20) are clipped
        # and NaN is taken as silence, so no input can overflow the network.
        window = np.clip(np.nan_to_num(window, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        p, h, c = self._net(np.concatenate([self._context, window]), self._h, self._c)
        if not (math.isfinite(p) and np.isfinite(h).all() and np.isfinite(c).all()):
            # A non-finite state would stay non-finite for good (the LSTM feeds it
            # back): start afresh, count it, and call this window silence.
            self.non_finite_resets += 1
            self.reset()
            return 0.0
        self._h, self._c = h, c
        self._context = window[-CONTEXT:].copy()
        return p

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Probabilities of every whole window of ``audio`` (continuing the stream)."""
        n = len(audio) // WINDOW
        return np.array([self(audio[i * WINDOW:(i + 1) * WINDOW]) for i in range(n)], dtype=np.float32)


class StreamResampler:
    """Resample a stream chunk by chunk to ``dst_rate``, as if it were resampled whole.

    Each push computes the output samples whose kernel is complete from the
    unconsumed input plus the kernel's width before it
    (:func:`~anyref_ros.audio.signal.resample_span`: exact positions on the
    stream's own sample count), so chunk boundaries leave no trace. The work
    per push is O((chunk + kernel width) x taps): it does not depend on the
    rates' common factors (383999 Hz costs what 384000 Hz costs) and nothing
    grows with the stream. The last samples (a kernel's half-width, ~1-3 ms)
    come out at the next push, or from :meth:`flush`.
    """

    def __init__(self, src_rate: int, dst_rate: int = SAMPLE_RATE) -> None:
        self.src = check_rate(src_rate, "src_rate")
        self.dst = check_rate(dst_rate, "dst_rate")
        self._half = kernel_half_width(self.src, self.dst)  # input samples each side of a position
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # input index of _buf[0]
        self._n_in = 0  # input samples pushed
        self._n_out = 0  # output samples returned

    def push(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"x: expected 1-D samples, got shape {x.shape}")
        if self.src == self.dst:
            self._n_in += len(x)
            self._n_out += len(x)
            return x
        self._buf = np.concatenate([self._buf, x])
        self._n_in += len(x)
        # Output m is at input position m * src / dst; it is complete when its
        # kernel's right half has arrived.
        last = (self._n_in - self._half) * self.dst // self.src  # outputs < last are complete
        return self._emit(max(self._n_out, last))

    def flush(self) -> np.ndarray:
        """The remaining output of a stream that ended (zeros taken after its end)."""
        if self.src == self.dst:
            return np.zeros(0, dtype=np.float32)
        end = -(-self._n_in * self.dst // self.src)
        return self._emit(end)

    def _emit(self, until: int) -> np.ndarray:
        if until <= self._n_out:
            return np.zeros(0, dtype=np.float32)
        out = resample_span(self._buf, self._buf_start, self.src, self.dst, self._n_out, until)
        self._n_out = until
        # Keep the input the next output's kernel starts at.
        keep_from = min(self._n_in, max(self._buf_start, self._n_out * self.src // self.dst - self._half + 1))
        self._buf = self._buf[keep_from - self._buf_start:]
        self._buf_start = keep_from
        return out


@dataclass
class Utterance:
    """One stretch of speech. ``audio`` (float32, 16 kHz) holds the pre-roll,
    the speech and the trailing silence; it is empty unless ``verdict == "ok"``.
    Times are seconds on the segmenter's stream clock."""

    start: float  # first sample of the speech (pre-roll excluded)
    end: float  # end of the last speech window
    verdict: str  # "ok", "too_short" or "too_long"
    audio: np.ndarray
    audio_start: float = 0.0  # time of audio[0]

    @property
    def duration(self) -> float:
        return self.end - self.start

    def audio_at_most(self, seconds: float) -> np.ndarray:
        """``audio`` cut to at most ``seconds``: the speech is kept whole (its
        first ``seconds`` if it alone is longer), the pre-roll and the trailing
        silence share what is left, each getting at least half of it when it
        has that much."""
        n = int(seconds * SAMPLE_RATE)
        if len(self.audio) <= n:
            return self.audio
        i0 = min(len(self.audio), max(0, int(round((self.start - self.audio_start) * SAMPLE_RATE))))
        i1 = min(len(self.audio), max(i0, int(round((self.end - self.audio_start) * SAMPLE_RATE))))
        spare = max(0, n - (i1 - i0))
        after = min(len(self.audio) - i1, spare - min(i0, spare // 2))
        before = min(i0, spare - after)
        return self.audio[i0 - before: i0 - before + n]


class UtteranceSegmenter:
    """Cut a 16 kHz stream into utterances (see the module docstring)."""

    def __init__(self, vad, *, threshold: float = 0.5, pre_roll_s: float = 0.3, end_silence_s: float = 0.5,
                 min_utterance_s: float = 0.3, max_utterance_s: float = 10.0) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold: expected a probability in (0, 1), got {threshold}")
        for name, value, hi in (("pre_roll_s", pre_roll_s, 5.0), ("end_silence_s", end_silence_s, 10.0),
                                ("min_utterance_s", min_utterance_s, 60.0), ("max_utterance_s", max_utterance_s, 60.0)):
            if not (math.isfinite(value) and 0.0 <= value <= hi):
                raise ValueError(f"{name}: expected seconds in [0, {hi}], got {value}")
        if max_utterance_s <= min_utterance_s:
            raise ValueError(f"max_utterance_s ({max_utterance_s}) must be larger than "
                             f"min_utterance_s ({min_utterance_s})")
        self.vad = vad
        self.threshold = float(threshold)
        self.off_threshold = max(0.01, self.threshold - HYSTERESIS)
        self._pre_windows = int(round(pre_roll_s * SAMPLE_RATE / WINDOW))
        self._end_windows = max(1, int(round(end_silence_s * SAMPLE_RATE / WINDOW)))
        self.min_utterance_s = float(min_utterance_s)
        self.max_utterance_s = float(max_utterance_s)
        self.reset()

    def reset(self) -> None:
        """Start a new stream (time 0 at the next pushed sample)."""
        self.vad.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self._index = 0  # windows seen
        self._pre: deque[np.ndarray] = deque(maxlen=max(1, self._pre_windows))
        self._speech: Optional[list[np.ndarray]] = None  # windows of the open utterance
        self._start = 0  # window index where the open utterance's speech started
        self._pre_count = 0  # pre-roll windows at the front of the open utterance
        self._last_speech = 0  # window index of its last speech window
        self._discarding = False  # the open utterance grew too long: wait for its end
        self.last_probability = 0.0

    @property
    def in_speech(self) -> bool:
        return self._speech is not None or self._discarding

    def push(self, audio: np.ndarray) -> list[Utterance]:
        """Feed 16 kHz samples; the utterances that ended in them."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"audio: expected 1-D 16 kHz samples, got shape {audio.shape}")
        buf = np.concatenate([self._pending, audio]) if len(self._pending) else audio
        n = len(buf) // WINDOW
        out: list[Utterance] = []
        for i in range(n):
            self._window(buf[i * WINDOW:(i + 1) * WINDOW], out)
        self._pending = buf[n * WINDOW:].copy()
        return out

    def flush(self) -> list[Utterance]:
        """End of the stream: close an open utterance."""
        out: list[Utterance] = []
        if self._speech is not None:
            out.append(self._close())
        self._discarding = False
        return out

    def _t(self, window_index: int) -> float:
        return window_index * WINDOW / SAMPLE_RATE

    def _window(self, w: np.ndarray, out: list[Utterance]) -> None:
        p = self.vad(w)
        self.last_probability = p
        index = self._index
        self._index += 1
        if self._discarding:
            if p >= self.off_threshold:
                self._last_speech = index
            elif index - self._last_speech >= self._end_windows:
                self._discarding = False
            return
        if self._speech is None:
            if p >= self.threshold:
                self._speech = list(self._pre) if self._pre_windows else []
                self._pre_count = len(self._speech)
                self._speech.append(w)
                self._start = self._last_speech = index
            elif self._pre_windows:
                self._pre.append(w)
            return
        self._speech.append(w)
        if p >= self.off_threshold:
            self._last_speech = index
        if self._t(self._last_speech + 1 - self._start) > self.max_utterance_s + LENGTH_SLACK_S:
            out.append(Utterance(self._t(self._start), self._t(index + 1), "too_long",
                                 np.zeros(0, np.float32), self._t(self._start)))
            self._speech = None
            self._pre.clear()
            self._discarding = True
        elif index - self._last_speech >= self._end_windows:
            out.append(self._close())

    def _close(self) -> Utterance:
        speech = self._speech or []
        start, end = self._t(self._start), self._t(self._last_speech + 1)
        audio_start = self._t(self._start - self._pre_count)
        self._speech = None
        self._pre.clear()
        if end - start < self.min_utterance_s:
            return Utterance(start, end, "too_short", np.zeros(0, np.float32), audio_start)
        return Utterance(start, end, "ok", np.concatenate(speech), audio_start)
