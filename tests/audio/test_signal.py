"""anyref_ros.audio.signal: mono mix, resampling accuracy and bounds, dBFS level;
and the model's audio pre-processing, which resamples through it."""

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from anyref_ros.audio import signal as S


def sine(rate, n, hz=1000.0):
    return np.sin(2 * np.pi * hz * np.arange(n) / rate).astype(np.float32)


# ------------------------------------------------------------------ to_mono
def test_to_mono_float_and_channels():
    x = np.array([0.5, -0.25, 1.0], np.float64)
    y = S.to_mono(x)
    assert y.dtype == np.float32 and y.shape == (3,)
    np.testing.assert_allclose(y, x)
    stereo = np.stack([np.ones(4), -np.ones(4) * 0.5], axis=1)
    np.testing.assert_allclose(S.to_mono(stereo), np.full(4, 0.25, np.float32))
    assert S.to_mono(np.zeros((0, 2), np.float32)).shape == (0,)


def test_to_mono_integer_pcm_is_full_scale():
    np.testing.assert_allclose(S.to_mono(np.array([-32768, 0, 16384], np.int16)), [-1.0, 0.0, 0.5])
    np.testing.assert_allclose(S.to_mono(np.array([0, 128, 192], np.uint8)), [-1.0, 0.0, 0.5])
    np.testing.assert_allclose(S.to_mono(np.array([[2 ** 30, 0]], np.int32)), [0.25])


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 2), np.float32), np.zeros((5, 0), np.float32),
                                 np.float32(1.0) * np.ones(()), np.array(["a"]), np.zeros(3, bool),
                                 [0.0, 1.0]])
def test_to_mono_rejects(bad):
    with pytest.raises(ValueError, match="samples"):
        S.to_mono(bad)


# ------------------------------------------------------------------ resample
@pytest.mark.parametrize("src,dst", [(48000, 16000), (44100, 16000), (16001, 16000), (48001, 16000),
                                     (8000, 16000), (16000, 48000), (22050, 16000), (384000, 1000)])
def test_resample_matches_analytic_sine(src, dst):
    hz = 1000.0 if dst > 2500 else 200.0
    x = sine(src, src, hz)  # 1 s
    y = S.resample(x, src, dst)
    assert y.dtype == np.float32 and y.shape == (-(-src * dst // src),)
    edge = 64  # the clip is zero outside: skip the edges
    err = np.abs(y - sine(dst, y.size, hz))[edge:-edge].max()
    assert err < 1e-4, err


def test_resample_rejects_what_does_not_fit_the_new_rate():
    x = sine(48000, 48000, 7000.0)  # above the 4 kHz Nyquist of 8 kHz: would alias to 1 kHz
    y = S.resample(x, 48000, 8000)
    assert np.sqrt(np.mean(y[64:-64] ** 2)) < 1e-3
    x = sine(48000, 48000, 3000.0)  # well inside: passes
    y = S.resample(x, 48000, 8000)
    assert abs(np.sqrt(np.mean(y[64:-64] ** 2)) - np.sqrt(0.5)) < 0.01


def test_resample_equal_rates_returns_input():
    x = sine(16000, 100)
    assert S.resample(x, 16000, 16000) is x
    y = S.resample(x.astype(np.float64), 16000, 16000)
    assert y.dtype == np.float32 and np.array_equal(y, x)


def test_resample_empty_and_short():
    assert S.resample(np.zeros(0, np.float32), 44100, 16000).shape == (0,)
    assert S.resample(np.ones(1, np.float32), 44100, 16000).shape == (1,)


@pytest.mark.parametrize("src,dst", [(999, 16000), (16000, 384001), (4_000_000_000, 16000), (16000.0, 8000),
                                     (True, 16000), (None, 16000), (-16000, 16000)])
def test_resample_rejects_rates(src, dst):
    with pytest.raises(ValueError, match=r"\[1000, 384000\]"):
        S.resample(np.zeros(10, np.float32), src, dst)


def test_resample_caps_length_before_work():
    # A broadcast view: ~1 GB if it were ever materialised.
    n = int(S.MAX_INPUT_SECONDS * 384000) + 1
    huge = np.broadcast_to(np.float32(0.0), (n,))
    with pytest.raises(ValueError, match="longer than"):
        S.resample(huge, 384000, 16000)
    with pytest.raises(ValueError, match="1-D"):
        S.resample(np.zeros((10, 2), np.float32), 16000, 8000)


@pytest.mark.parametrize("src", [16001, 48001, 44100])
def test_resample_memory_is_bounded_whatever_the_gcd(src):
    """Regression: torchaudio's polyphase kernel needed +4 GB for 0.2 s at 16001 Hz."""
    x = np.random.default_rng(0).standard_normal(src // 5).astype(np.float32)
    tracemalloc.start()
    try:
        y = S.resample(x, src, 16000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert y.size == 3200
    assert peak < 100e6, peak


# ------------------------------------------------------------------ rms_db
def test_rms_db():
    assert S.rms_db(np.zeros(100, np.float32)) == S.FLOOR_DB
    assert S.rms_db(np.zeros(0, np.float32)) == S.FLOOR_DB
    assert S.rms_db(np.full(10, 1e-9, np.float32)) == S.FLOOR_DB  # -180 dB clamps to the floor
    assert S.rms_db(np.ones(10, np.float32)) == pytest.approx(0.0)
    assert S.rms_db(sine(16000, 16000)) == pytest.approx(-3.0103, abs=1e-3)
    with pytest.raises(ValueError, match="NaN"):
        S.rms_db(np.array([0.0, np.nan]))


# ------------------------------------------------------------------ model pre-processing
_CHILD = r"""
import resource, sys
import numpy as np
from anyref_ros.model.config import AudioConfig
from anyref_ros.model import processing as P
cfg = AudioConfig()
P.audio_clips(P.check_audio(np.zeros(3200, np.float32), 16000, cfg), 16000, cfg)  # warm up torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for rate in (16001, 48001):
    audio = np.random.default_rng(0).standard_normal(rate // 5).astype(np.float32)
    clips = P.audio_clips(P.check_audio(audio, rate, cfg), rate, cfg)
    assert tuple(clips.shape) == (1, cfg.num_clips, 1, cfg.num_mel_bins, cfg.target_length), clips.shape
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0)
"""


def test_model_audio_odd_rates_small_memory():
    """0.2 s at 16001 / 48001 Hz through check_audio + audio_clips: peak RSS grows < 100 MB.
    Run in a fresh process so the peak is not hidden by earlier tests."""
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) < 100.0, out.stdout


def test_model_audio_rate_range_checked_before_work():
    from anyref_ros.model import processing as P
    from anyref_ros.model.config import AudioConfig

    cfg = AudioConfig()
    huge = np.broadcast_to(np.float32(0.0), (10 ** 9, 2))  # never materialised
    for rate in (7999, 192001, 4_000_000_000):
        with pytest.raises(ValueError, match=r"\[8000, 192000\]"):
            P.check_audio(huge, rate, cfg)
    with pytest.raises(ValueError, match="longer than"):
        P.check_audio(huge, 44100, cfg)


def test_model_audio_resamples_with_signal():
    from anyref_ros.model import processing as P
    from anyref_ros.model.config import AudioConfig

    cfg = AudioConfig()
    x = sine(48000, 48000 * 3)
    direct = P.audio_clips(S.resample(x, 48000, 16000), 16000, cfg)
    via = P.audio_clips(P.check_audio(x, 48000, cfg), 48000, cfg)
    assert np.array_equal(direct.numpy(), via.numpy())
