"""anyref_ros.audio.events: the sound-event detector on synthetic audio fed in
100 ms chunks, at 16 kHz and 48 kHz (toy-world signature sounds over room
noise, white noise, mains hum, clicks), plus malformed input."""

import numpy as np
import pytest

from anyref_ros.audio.events import EventConfig, SoundEvent, SoundEventDetector
from anyref_ros.data.toy_audio import SoundLayout, _room_noise, shape_sound

RATES = (16000, 48000)
T0 = 1000.0  # stream time of the first sample


def feed_all(det, x, rate, chunk_s=0.1, t0=T0):
    """Feed ``x`` in chunks; return [(event, stream time at the end of the chunk that reported it)]."""
    n = int(round(chunk_s * rate))
    got = []
    for a in range(0, x.size, n):
        chunk = x[a:a + n]
        for ev in det.feed(chunk, rate, t0 + a / rate):
            got.append((ev, t0 + (a + chunk.size) / rate))
    return got


def room(rng, seconds, rate, rms=(0.002, 0.02), hum=0.0):
    layout = SoundLayout(room_rms=rms, hum_prob=hum, hum_amplitude=(0.01, 0.05))
    return _room_noise(rng, int(round(seconds * rate)), rate, layout)[0].astype(np.float32)


def hum(seconds, rate, amplitude=0.05):
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * (np.sin(2 * np.pi * 50 * t) + 0.3 * np.sin(2 * np.pi * 100 * t))).astype(np.float32)


def scene(rng, rate, parts, tail=3.0, hum_prob=0.0, rms=(0.002, 0.02)):
    """Room noise with sounds: parts = [(lead_in_s, shape, seconds), ...] one after another."""
    pieces, onsets, t = [], [], 0.0
    for lead, shape, seconds in parts:
        pieces.append(("gap", lead))
        onsets.append(t + lead)
        t += lead + seconds
        pieces.append((shape, seconds))
    total = t + tail
    x = room(rng, total, rate, rms, hum_prob)
    pos = 0
    for kind, seconds in pieces:
        n = int(round(seconds * rate))
        if kind != "gap":
            x[pos:pos + n] += shape_sound(rng, kind, seconds, rate)
        pos += n
    return x, [T0 + o for o in onsets]


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
def test_each_toy_sound_is_one_event_at_its_onset(rate, shape):
    rng = np.random.default_rng(hash((rate, shape)) % 2 ** 32)
    for trial in range(4):
        lead, seconds = rng.uniform(1.0, 3.0), rng.uniform(1.0, 2.0)
        x, onsets = scene(rng, rate, [(lead, shape, seconds)], hum_prob=0.5 if trial % 2 else 0.0)
        det = SoundEventDetector()
        got = feed_all(det, x, rate)
        assert len(got) == 1, (trial, got)
        ev, reported_at = got[0]
        assert abs(ev.onset_s - onsets[0]) <= 0.05, (trial, ev, onsets)
        assert ev.offset_s is None  # reported while the sound goes on
        cfg = det.config
        assert reported_at <= onsets[0] + cfg.min_duration_s + 0.1 + 2 * cfg.frame_s
        assert ev.peak_db > ev.floor_db + cfg.threshold_db
        assert det.last_offset_s == pytest.approx(onsets[0] + seconds, abs=0.1)


@pytest.mark.parametrize("rate", RATES)
def test_loudest_room_with_hum_still_detects_the_quietest_sound(rate):
    rng = np.random.default_rng(7)
    x = room(rng, 6.0, rate, rms=(0.02, 0.02)) + hum(6.0, rate, 0.05)
    quiet = shape_sound(rng, "circle", 1.5, rate)
    quiet *= 0.3 * np.sqrt(0.5 * 1.1) / np.sqrt(np.mean(quiet ** 2))  # lowest toy amplitude, 0.3
    x[2 * rate: 2 * rate + quiet.size] += quiet
    got = feed_all(SoundEventDetector(), x, rate)
    assert len(got) == 1 and abs(got[0][0].onset_s - (T0 + 2.0)) <= 0.05, got


@pytest.mark.parametrize("rate", RATES)
def test_two_sounds_4s_apart_are_two_events(rate):
    rng = np.random.default_rng(3)
    x, onsets = scene(rng, rate, [(1.5, "circle", 1.5), (4.0, "triangle", 1.5)])
    got = feed_all(SoundEventDetector(), x, rate)
    assert len(got) == 2, got
    for (ev, _), onset in zip(got, onsets):
        assert abs(ev.onset_s - onset) <= 0.05


@pytest.mark.parametrize("rate", RATES)
def test_two_sounds_half_a_second_apart_are_one_event(rate):
    rng = np.random.default_rng(4)
    x, onsets = scene(rng, rate, [(1.5, "square", 1.0), (0.5, "circle", 1.0)])
    det = SoundEventDetector()
    got = feed_all(det, x, rate)
    assert len(got) == 1 and abs(got[0][0].onset_s - onsets[0]) <= 0.05, got
    assert det.last_offset_s == pytest.approx(onsets[1] + 1.0, abs=0.1)  # the merged sound ended with the 2nd


@pytest.mark.parametrize("rate", RATES)
def test_quiet_white_noise_is_no_event(rate):
    rng = np.random.default_rng(5)
    for level in (0.001, 0.01, 0.1):
        x = (level * rng.standard_normal(5 * rate)).astype(np.float32)
        assert feed_all(SoundEventDetector(), x, rate) == []


@pytest.mark.parametrize("rate", RATES)
def test_digital_silence_then_room_noise_is_no_event(rate):
    """A driver that starts with zeros (or a microphone unmuted) and then hears
    the room: the floor must not start at digital silence. A sound in that
    room afterwards is still one event at its onset, and so after a second
    stretch of zeros in the middle of the stream."""
    rng = np.random.default_rng(12)
    zeros = np.zeros(2 * rate, np.float32)
    for rms in (0.002, 0.02):  # about -54 and -34 dBFS of room
        det = SoundEventDetector()
        assert feed_all(det, np.concatenate([zeros, room(rng, 5.0, rate, rms=(rms, rms))]), rate) == [], rms
        assert det.floor_db == pytest.approx(20 * np.log10(rms), abs=4.0)
        got = feed_all(det, np.concatenate([zeros, room(rng, 3.0, rate, rms=(rms, rms))]), rate, t0=T0 + 7.0)
        assert got == [], ("zeros in the middle", rms)
    x, onsets = scene(rng, rate, [(1.0, "circle", 1.0)], rms=(0.01, 0.01))
    got = feed_all(det, np.concatenate([zeros, x]), rate, t0=T0 + 20.0)
    assert len(got) == 1 and abs(got[0][0].onset_s - (onsets[0] + 22.0)) <= 0.05, got


@pytest.mark.parametrize("rate", RATES)
def test_steady_hum_from_the_start_is_no_event(rate):
    rng = np.random.default_rng(6)
    x = hum(10.0, rate) + room(rng, 10.0, rate, rms=(0.002, 0.002))
    assert feed_all(SoundEventDetector(), x, rate) == []


@pytest.mark.parametrize("rate", RATES)
def test_hum_switching_on_is_at_most_one_event_at_its_start(rate):
    """Rule: a steady noise switching on >= threshold above the floor is one event at its start;
    the floor then absorbs it and it is never reported again."""
    rng = np.random.default_rng(8)
    x = room(rng, 20.0, rate, rms=(0.002, 0.002))
    x[3 * rate:] += hum(17.0, rate)
    det = SoundEventDetector()
    got = feed_all(det, x, rate)
    assert len(got) <= 1, got
    if got:
        assert abs(got[0][0].onset_s - (T0 + 3.0)) <= 0.05
    assert not det.in_sound and det.floor_db == pytest.approx(-29.7, abs=2.0)  # the hum is the floor


@pytest.mark.parametrize("rate", RATES)
def test_click_is_no_event(rate):
    rng = np.random.default_rng(9)
    x = room(rng, 4.0, rate, rms=(0.002, 0.002))
    n = int(0.005 * rate)
    x[2 * rate: 2 * rate + n] += 0.9 * np.sign(rng.standard_normal(n)).astype(np.float32)
    assert feed_all(SoundEventDetector(), x, rate) == []


def test_whole_sound_in_one_chunk_has_its_offset():
    rng = np.random.default_rng(10)
    x, onsets = scene(rng, 16000, [(1.0, "circle", 1.2)], tail=1.0)
    got = SoundEventDetector().feed(x, 16000, T0)
    assert len(got) == 1 and isinstance(got[0], SoundEvent)
    assert got[0].offset_s == pytest.approx(onsets[0] + 1.2, abs=0.05)


def test_long_sound_becomes_background():
    rng = np.random.default_rng(11)
    x = room(rng, 20.0, 16000, rms=(0.002, 0.002))
    x[16000:] += 0.5 * np.sin(2 * np.pi * 440 * np.arange(19 * 16000) / 16000).astype(np.float32)
    det = SoundEventDetector()
    got = feed_all(det, x, 16000)
    assert len(got) == 1 and got[0][0].onset_s == pytest.approx(T0 + 1.0, abs=0.05)
    assert not det.in_sound  # ended after max_event_s at the latest


def test_stamps_gaps_and_unknown_stamps():
    rng = np.random.default_rng(12)
    x, onsets = scene(rng, 16000, [(2.0, "triangle", 1.5)])
    det = SoundEventDetector()
    got = []
    for k, a in enumerate(range(0, x.size, 1600)):
        got += det.feed(x[a:a + 1600], 16000, T0 if k == 0 else 0.0)  # only the first chunk stamped
    assert len(got) == 1 and abs(got[0].onset_s - onsets[0]) <= 0.05
    # a stamp gap in the middle of a sound drops it: no event from its second half
    det = SoundEventDetector()
    half = int((onsets[0] - T0 + 0.05) * 16000)
    feed_all(det, x[:half], 16000)
    assert not det.in_sound
    rest = feed_all(det, x[half:], 16000, t0=T0 + half / 16000 + 5.0)  # 5 s later
    assert len(rest) == 1  # treated as a new sound after the gap, onset at the restart
    assert rest[0][0].onset_s == pytest.approx(T0 + half / 16000 + 5.0, abs=0.05)


def test_malformed_chunks_raise_before_changing_state():
    rng = np.random.default_rng(13)
    x, onsets = scene(rng, 16000, [(2.0, "circle", 1.5)])
    det = SoundEventDetector()
    got = []
    for k, a in enumerate(range(0, x.size, 1600)):
        if k == 15:
            for bad in (np.full(1600, np.nan, np.float32), np.full(1600, np.inf, np.float32),
                        np.zeros((1600, 2), np.float32), [0.0] * 10):
                with pytest.raises(ValueError):
                    det.feed(bad, 16000, T0 + a / 16000)
            with pytest.raises(ValueError, match="rate"):
                det.feed(x[a:a + 1600], 0, T0 + a / 16000)
            with pytest.raises(ValueError, match="stamp_s"):
                det.feed(x[a:a + 1600], 16000, float("inf"))
            assert det.feed(np.zeros(0, np.float32), 16000, T0 + a / 16000) == []
        got += det.feed(x[a:a + 1600], 16000, T0 + a / 16000)
    assert len(got) == 1 and abs(got[0].onset_s - onsets[0]) <= 0.05


def test_rate_change_resets():
    rng = np.random.default_rng(14)
    det = SoundEventDetector()
    feed_all(det, room(rng, 2.0, 16000), 16000)
    assert det.rate == 16000 and det.floor_db is not None
    loud = (0.3 * rng.standard_normal(48000)).astype(np.float32)
    assert det.feed(loud, 48000, T0 + 2.0) == []  # new rate: a new floor, not a jump above the old one
    assert det.rate == 48000 and det.floor_db == pytest.approx(-10.5, abs=1.0)


def test_odd_chunk_sizes_give_the_same_events():
    rng = np.random.default_rng(15)
    x, onsets = scene(rng, 48000, [(1.3, "square", 1.5), (3.0, "circle", 1.0)])
    a = [ev for ev, _ in feed_all(SoundEventDetector(), x, 48000, chunk_s=0.1)]
    b = [ev for ev, _ in feed_all(SoundEventDetector(), x, 48000, chunk_s=0.0173)]
    assert len(a) == len(b) == 2
    for e, f in zip(a, b):
        assert e.onset_s == pytest.approx(f.onset_s, abs=1e-6)


def test_config_checks():
    for kwargs in ({"threshold_db": -1}, {"frame_s": 0}, {"min_duration_s": float("nan")},
                   {"hysteresis_db": 20.0}, {"max_event_s": 0.1}, {"min_floor_db": 5.0}):
        with pytest.raises(ValueError, match="EventConfig"):
            EventConfig(**kwargs)
