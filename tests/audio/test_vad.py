"""Voice activity detection on real sound: the Silero VAD weights shipped in
the silero-vad wheel, speech synthesised by espeak-ng at test time, the toy
world's sounds (anyref_ros.data.toy_audio) and plain tones, chirps and noise.
No stand-ins."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from anyref_ros.audio.signal import resample
from anyref_ros.audio.vad import SAMPLE_RATE, WINDOW, SileroVAD, StreamResampler, UtteranceSegmenter
from anyref_ros.data.toy_audio import shape_sound
from testsupport import HELPERS

sys.path.insert(0, str(HELPERS))
import mic_audio  # noqa: E402

needs_espeak = pytest.mark.skipif(not mic_audio.have_espeak(), reason="espeak-ng is not installed (make setup)")


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


def speech16k(text: str, tmp_path) -> np.ndarray:
    pcm, rate = mic_audio.speak(text, tmp_path)
    return resample(pcm.astype(np.float32) / 32768.0, rate, SAMPLE_RATE)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def run(segmenter: UtteranceSegmenter, audio: np.ndarray, chunk: int = 1600) -> list:
    """Push ``audio`` in ``chunk``-sample pieces (100 ms), then flush."""
    segmenter.reset()
    out = []
    for i in range(0, len(audio), chunk):
        out += segmenter.push(audio[i:i + chunk])
    return out + segmenter.flush()


def speech_span(x: np.ndarray, level: float = 0.02) -> tuple[float, float]:
    """First and last sample louder than ``level`` (s): where espeak-ng's voice is."""
    loud = np.nonzero(np.abs(x) > level)[0]
    return loud[0] / SAMPLE_RATE, (loud[-1] + 1) / SAMPLE_RATE


@pytest.mark.parametrize("src", [8000, 22050, 44100, 48000, 16000])
def test_stream_resampler_equals_resampling_the_whole_stream(src):
    rng = np.random.default_rng(src)
    x = rng.normal(0, 0.2, int(src * 1.3)).astype(np.float32)
    r = StreamResampler(src)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, src // 5))
        parts.append(r.push(x[i:i + n]))
        i += n
    parts.append(r.flush())
    got = np.concatenate(parts)
    whole = resample(x, src, SAMPLE_RATE)
    assert len(got) == len(whole)
    np.testing.assert_allclose(got, whole, atol=1e-5)


@needs_espeak
def test_one_spoken_command_is_one_utterance_with_pre_roll(vad, tmp_path):
    voice = speech16k("find the red circle", tmp_path)
    audio = np.concatenate([silence(1.0), voice, silence(1.0)])
    utterances = run(UtteranceSegmenter(vad, pre_roll_s=0.3, end_silence_s=0.5), audio)
    assert [u.verdict for u in utterances] == ["ok"]
    u = utterances[0]
    first, last = speech_span(audio)
    assert first - 0.15 <= u.start <= first + 0.15, (u.start, first)
    assert last - 0.3 <= u.end <= last + 0.15, (u.end, last)
    assert u.audio_start == pytest.approx(u.start - 0.3, abs=WINDOW / SAMPLE_RATE)
    # The cut audio is the stream's own samples from audio_start on: pre-roll, speech, trailing silence.
    i0 = int(round(u.audio_start * SAMPLE_RATE))
    np.testing.assert_array_equal(u.audio, audio[i0:i0 + len(u.audio)])
    assert len(u.audio) / SAMPLE_RATE >= (last - first) + 0.3


@needs_espeak
def test_two_commands_with_a_pause_are_two_utterances(vad, tmp_path):
    a, b = speech16k("find the cup", tmp_path), speech16k("where is the blue square", tmp_path)
    audio = np.concatenate([silence(0.5), a, silence(1.2), b, silence(1.0)])
    utterances = run(UtteranceSegmenter(vad), audio)
    assert [u.verdict for u in utterances] == ["ok", "ok"]
    assert utterances[0].end < utterances[1].start


@needs_espeak
def test_too_short_and_too_long_speech_come_back_without_audio(vad, tmp_path):
    short = speech16k("cup", tmp_path)
    (u,) = run(UtteranceSegmenter(vad, min_utterance_s=1.0), np.concatenate([silence(0.5), short, silence(1.0)]))
    assert u.verdict == "too_short" and len(u.audio) == 0
    long_speech = speech16k("find the red circle and the blue square and the green triangle and the yellow "
                            "circle and the cup on the table next to the chair", tmp_path)
    assert len(long_speech) / SAMPLE_RATE > 4.0
    after = speech16k("find the cup", tmp_path)
    audio = np.concatenate([silence(0.5), long_speech, silence(1.0), after, silence(1.0)])
    utterances = run(UtteranceSegmenter(vad, max_utterance_s=2.0), audio)
    assert [u.verdict for u in utterances] == ["too_long", "ok"], [(u.verdict, u.start, u.end) for u in utterances]
    assert len(utterances[0].audio) == 0
    # The open utterance never holds more than max + pre-roll + end silence.
    assert len(utterances[1].audio) <= (2.0 + 0.3 + 0.5) * SAMPLE_RATE + WINDOW


def toy_and_plain_sounds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    chirp = np.sin(2 * np.pi * (300 * t + (1200 - 300) / 2 * t ** 2 / 3.0))  # 300 -> 1200 Hz over 3 s
    sounds = {
        "sine 440 Hz": 0.5 * np.sin(2 * np.pi * 440 * t),
        "chirp 300-1200 Hz": 0.5 * chirp,
        "white noise": rng.normal(0, 0.1, len(t)),
        "loud white noise": rng.normal(0, 0.3, len(t)).clip(-1, 1),
    }
    for shape in ("circle", "square", "triangle"):  # the toy world's sounds, with their 10 dB noise
        sounds[f"toy {shape}"] = shape_sound(np.random.default_rng(7), shape, 2.0, SAMPLE_RATE)
    return {k: np.asarray(v, np.float32) for k, v in sounds.items()}


@pytest.mark.parametrize("name", list(toy_and_plain_sounds()))
def test_tones_chirps_and_noise_are_not_speech(vad, name):
    """No utterance reaches the recogniser. The toy triangle's chirp restarts
    every second with a jump from 1200 to 300 Hz, which the VAD scores as
    speech for ~0.1 s (up to 0.8); such blips come back as "too_short" (under
    min_utterance_s = 0.3 s), which the node drops with a log line."""
    sound = toy_and_plain_sounds()[name]
    audio = np.concatenate([silence(0.5), sound, silence(1.0)])
    segmenter = UtteranceSegmenter(vad, min_utterance_s=0.3)
    utterances = run(segmenter, audio)
    assert [u for u in utterances if u.verdict == "ok"] == []
    assert all(u.verdict == "too_short" and u.duration < 0.2 for u in utterances), utterances
    segmenter.reset()
    probabilities = vad.probabilities(audio)
    print(f"{name}: highest speech probability {probabilities.max():.3f}, "
          f"windows >= threshold: {int((probabilities >= segmenter.threshold).sum())}")
    if not name.startswith("toy triangle"):
        assert probabilities.max() < segmenter.threshold


def test_bad_settings_are_refused(vad):
    with pytest.raises(ValueError, match="threshold"):
        UtteranceSegmenter(vad, threshold=1.5)
    with pytest.raises(ValueError, match="larger than min_utterance_s"):
        UtteranceSegmenter(vad, min_utterance_s=3.0, max_utterance_s=2.0)
    with pytest.raises(ValueError, match="512 samples"):
        vad(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="src_rate"):
        StreamResampler(10)
