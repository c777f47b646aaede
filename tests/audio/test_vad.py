"""Voice activity detection on real sound: the Silero VAD weights shipped in
the silero-vad wheel, speech synthesised by espeak-ng at test time, the toy
world's sounds (anyref_ros.data.toy_audio) and plain tones, chirps and noise.
No stand-ins."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from anyref_ros.audio.signal import resample
from anyref_ros.audio.asr import MAX_SECONDS, PocketSphinxRecognizer
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


@pytest.mark.parametrize("src", [8000, 22050, 44100, 48000, 16000, 16001, 383999, 384000])
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


def stream_cost(src: int, seconds: float = 1.0, tries: int = 3) -> float:
    """Least CPU time of pushing ``seconds`` of noise at ``src`` Hz through a
    StreamResampler in 100 ms chunks, over ``tries`` runs."""
    x = np.random.default_rng(1).normal(0, 0.1, int(src * seconds)).astype(np.float32)
    step = src // 10
    best = float("inf")
    for _ in range(tries):
        r = StreamResampler(src)
        t = time.process_time()
        for i in range(0, len(x), step):
            r.push(x[i:i + step])
        best = min(best, time.process_time() - t)
    return best


def test_stream_resampler_cost_does_not_depend_on_the_rates_common_factors():
    """383999 Hz shares no factor with 16 kHz, 384000 Hz shares 16000: the same
    second of audio must cost about the same (a generous 3x; it was ~600x)."""
    costs = {src: stream_cost(src) for src in (48000, 384000, 383999)}
    print({src: f"{1000 * c:.1f} ms per s of audio" for src, c in costs.items()})
    assert costs[383999] <= 3 * costs[384000] + 0.01, costs


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


@needs_espeak
def test_huge_samples_do_not_deafen_the_vad(tmp_path):
    """One chunk of huge finite samples (1e20, a driver's garbage) used to turn
    the network's state into NaN for good: no utterance was ever cut again."""
    voice = speech16k("find the red circle", tmp_path)
    junk = np.full(4 * WINDOW, 1e20, np.float32)
    junk[::2] = -1e20
    audio = np.concatenate([silence(0.5), junk, silence(1.0), voice, silence(1.0)])
    vad = SileroVAD()
    utterances = [u for u in run(UtteranceSegmenter(vad), audio) if u.verdict == "ok"]
    first, last = speech_span(audio[len(junk) + int(0.5 * SAMPLE_RATE):])
    offset = (len(junk) + int(0.5 * SAMPLE_RATE)) / SAMPLE_RATE
    assert [u for u in utterances if u.start <= offset + first + 0.15 and u.end >= offset + last - 0.3], \
        [(u.start, u.end) for u in utterances]
    assert vad.non_finite_resets == 0  # clipping kept the network finite
    assert np.isfinite(vad.probabilities(silence(0.1))).all()


def test_a_non_finite_vad_state_is_reset_and_counted(vad):
    """The safety net behind the clipping: a state that is no longer finite
    (set here by hand: what an overflow inside the network leaves) is reset,
    the window scores 0 and the event is counted; the next windows are scored."""
    vad.reset()
    resets = vad.non_finite_resets
    vad._h[:] = np.nan
    assert vad(np.zeros(WINDOW, np.float32)) == 0.0
    assert vad.non_finite_resets == resets + 1
    assert np.isfinite(vad.probabilities(np.random.default_rng(0).normal(0, 0.1, 4 * WINDOW))).all()
    vad.reset()
    assert vad.non_finite_resets == resets + 1  # a stream reset is not counted


def continuous_speech(texts, tmp_path) -> np.ndarray:
    """espeak-ng sentences with their leading and trailing silence cut, joined
    without a pause: one stretch of speech exactly len(...) / 16000 s long."""
    parts = []
    for text in texts:
        voice = speech16k(text, tmp_path)
        first, last = speech_span(voice)
        parts.append(voice[int(round(first * SAMPLE_RATE)): int(round(last * SAMPLE_RATE))])
    return np.concatenate(parts)


@needs_espeak
@pytest.mark.parametrize("lead", [1.0, 1.5, 1.517])
def test_speech_of_exactly_max_utterance_s_is_kept(vad, tmp_path, lead):
    """Speech exactly max_utterance_s long, at any offset in the VAD's windows,
    comes back "ok" with its pre-roll and trailing silence."""
    for texts in (["where is the blue square on the table"], ["find the red circle"] * 3):
        speech = continuous_speech(texts, tmp_path)
        seconds = len(speech) / SAMPLE_RATE
        audio = np.concatenate([silence(lead), speech, silence(1.0)])
        (u,) = run(UtteranceSegmenter(vad, max_utterance_s=seconds, pre_roll_s=0.3, end_silence_s=0.5), audio)
        assert u.verdict == "ok", (texts, lead, seconds, u.start, u.end)
        assert u.audio_start <= lead and u.audio_start + len(u.audio) / SAMPLE_RATE >= lead + seconds


@needs_espeak
def test_thirty_seconds_of_speech_with_its_silences_is_recognised(vad, tmp_path):
    """max_utterance_s at its largest (30 s, the recognisers' limit): the
    utterance (30 s of speech + pre-roll + trailing silence) is kept, and what
    the speech node hands the recogniser (audio_at_most(MAX_SECONDS)) is
    transcribed, not refused as too long."""
    speech = continuous_speech(["find the red circle", "where is the blue square", "show me the cup"], tmp_path)
    speech = np.resize(speech, int(MAX_SECONDS * SAMPLE_RATE))  # repeated: exactly 30 s
    audio = np.concatenate([silence(1.0), speech, silence(1.0)])
    (u,) = run(UtteranceSegmenter(vad, max_utterance_s=MAX_SECONDS, pre_roll_s=0.3, end_silence_s=0.5), audio)
    assert u.verdict == "ok" and len(u.audio) > MAX_SECONDS * SAMPLE_RATE
    clip = u.audio_at_most(MAX_SECONDS)
    assert len(clip) == MAX_SECONDS * SAMPLE_RATE
    # The clip is the stream's own samples, from within the VAD's timing of the speech's start.
    mid = len(clip) // 2
    (k,) = [k for k in range(2 * SAMPLE_RATE) if np.array_equal(audio[k + mid: k + mid + 1000], clip[mid: mid + 1000])]
    assert abs(k - SAMPLE_RATE) <= 0.15 * SAMPLE_RATE, k / SAMPLE_RATE
    assert PocketSphinxRecognizer().transcribe(clip).text
