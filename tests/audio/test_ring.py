"""anyref_ros.audio.ring: bounded capacity, time indexing, discontinuities,
bad chunks and concurrent push/read."""

import threading

import numpy as np
import pytest

from anyref_ros.audio.ring import HARD_CAP, AudioRing, StreamClock


def ramp(a, b):
    return np.arange(a, b, dtype=np.float32)


def push_stream(ring, total, rate, chunk, t0=100.0):
    for a in range(0, total, chunk):
        b = min(total, a + chunk)
        ring.push(ramp(a, b), rate, t0 + a / rate)


def test_capacity_and_latest_wraparound():
    ring = AudioRing(2.0)
    rng = np.random.default_rng(1)
    a, t0 = 0, 100.0
    while a < 16000 * 5:
        b = a + int(rng.integers(1, 3000))
        ring.push(ramp(a, b), 16000, t0 + a / 16000)
        a = b
    assert ring.capacity == 32000 and ring.rate == 16000
    assert ring.duration == pytest.approx(2.0)
    x, rate, start = ring.latest(10.0)
    np.testing.assert_array_equal(x, ramp(a - 32000, a))
    assert rate == 16000 and start == pytest.approx(t0 + (a - 32000) / 16000)
    assert ring.end_stamp == pytest.approx(t0 + a / 16000)
    x, _, start = ring.latest(0.5)
    np.testing.assert_array_equal(x, ramp(a - 8000, a))
    assert start == pytest.approx(ring.end_stamp - 0.5)
    assert ring.latest(0)[0].size == 0 and ring.latest(float("nan"))[0].size == 0


def test_chunk_longer_than_capacity_keeps_its_tail():
    ring = AudioRing(1.0)
    ring.push(ramp(0, 40000), 16000, 10.0)
    x, _, start = ring.latest(5)
    np.testing.assert_array_equal(x, ramp(24000, 40000))
    assert start == pytest.approx(10.0 + 24000 / 16000)


def test_capacity_never_exceeds_caps():
    ring = AudioRing(1e6)  # "keep everything"
    ring.push(np.zeros(10, np.float32), 384000, 1.0)
    assert ring.capacity == HARD_CAP
    small = AudioRing(10.0, max_samples=1000)
    small.push(np.zeros(5000, np.float32), 16000, 1.0)
    assert small.capacity == 1000 and small.duration == pytest.approx(1000 / 16000)
    with pytest.raises(ValueError, match=r"\[1000, 384000\]"):
        small.push(np.zeros(10, np.float32), 4_000_000_000, 2.0)
    assert small.rate == 16000 and small.capacity == 1000  # untouched


def test_window_by_time():
    ring = AudioRing(3.0)
    push_stream(ring, 16000 * 4, 16000, 1600)  # 100.0 .. 104.0, holds 101 .. 104
    x, rate, start = ring.window(102.0, 102.5)
    np.testing.assert_array_equal(x, ramp(32000, 40000))
    assert start == pytest.approx(102.0)
    x, _, start = ring.window(90.0, 101.25)  # clipped at the oldest sample
    np.testing.assert_array_equal(x, ramp(16000, 20000))
    assert start == pytest.approx(101.0)
    x, _, start = ring.window(103.5, 200.0)  # clipped at the newest
    np.testing.assert_array_equal(x, ramp(56000, 64000))
    assert ring.window(50.0, 60.0)[0].size == 0
    assert ring.window(102.0, 101.0)[0].size == 0
    with pytest.raises(ValueError):
        ring.window(float("nan"), 1.0)


def test_jitter_is_contiguous_gaps_and_backward_jumps_restart():
    ring = AudioRing(10.0)
    ring.push(ramp(0, 1600), 16000, 50.0)
    ring.push(ramp(1600, 3200), 16000, 50.1 + 0.02)  # 20 ms late: jitter
    ring.push(ramp(3200, 4800), 16000, 50.2 - 0.02)  # 20 ms early: jitter
    ring.push(ramp(4800, 6400), 16000, 0.0)  # unknown stamp: contiguous
    assert ring.restarts == 0 and ring.duration == pytest.approx(0.4)
    np.testing.assert_array_equal(ring.latest(1)[0], ramp(0, 6400))
    assert ring.end_stamp == pytest.approx(50.4 - 0.02)  # anchored to the newest stamp
    ring.push(ramp(0, 1600), 16000, 51.0)  # 0.62 s gap: restart
    assert ring.restarts == 1 and ring.duration == pytest.approx(0.1)
    assert ring.start_stamp == pytest.approx(51.0)
    ring.push(ramp(0, 1600), 16000, 40.0)  # backwards: restart
    assert ring.restarts == 2 and ring.start_stamp == pytest.approx(40.0)


def test_rate_change_clears():
    ring = AudioRing(1.0)
    ring.push(np.ones(8000, np.float32), 16000, 5.0)
    ring.push(np.zeros(4800, np.float32), 48000, 5.5)
    assert ring.rate == 48000 and ring.capacity == 48000
    assert ring.duration == pytest.approx(0.1)
    assert not ring.latest(1)[0].any()


def test_bad_chunks_leave_state_untouched():
    ring = AudioRing(1.0)
    ring.push(ramp(0, 100), 16000, 1.0)
    for bad, rate, stamp in [(np.array([0.0, np.nan], np.float32), 16000, 2.0),
                             (np.array([np.inf], np.float32), 16000, 2.0),
                             (np.zeros((10, 2, 1), np.float32), 16000, 2.0),
                             (np.zeros((10, 33), np.float32), 16000, 2.0),
                             ([0.0, 1.0], 16000, 2.0),
                             (np.zeros(10, np.float32), 16000.0, 2.0),
                             (np.zeros(10, np.float32), 16000, float("nan")),
                             (np.zeros(10, np.float32), 16000, -1.0)]:
        with pytest.raises(ValueError):
            ring.push(bad, rate, stamp)
    ring.push(np.zeros(0, np.float32), 48000, 9.0)  # empty: ignored
    assert ring.rate == 16000 and ring.restarts == 0
    np.testing.assert_array_equal(ring.latest(1)[0], ramp(0, 100))
    ring.clear()
    assert ring.rate == 0 and ring.duration == 0.0 and ring.latest(1)[0].size == 0


def test_multichannel_stream_keeps_its_channels_and_a_new_layout_restarts():
    """A microphone array's chunks (frames, channels) are held as they are
    (for direction finding); the sample cap counts every channel; a chunk
    with another channel count (or mono) starts a new stream."""
    ring = AudioRing(1.0, max_samples=4 * 8000)
    chunk = np.stack([ramp(0, 16000) * (c + 1) for c in range(4)], axis=1)
    ring.push(chunk, 16000, 5.0)
    assert ring.channels == 4 and ring.capacity == 8000 and ring.duration == 0.5
    held, rate, start = ring.window(5.75, 6.0)
    assert held.shape == (4000, 4) and rate == 16000 and start == pytest.approx(5.75)
    np.testing.assert_array_equal(held, chunk[12000:16000])
    ring.push(ramp(0, 1600), 16000, 6.0)  # mono now: a new stream
    assert ring.channels == 1 and ring.restarts == 0 and ring.latest(1)[0].shape == (1600,)
    assert ring.window(5.0, 6.0)[0].shape == (0,)


def test_constructor_checks():
    for bad in (0, -1.0, float("inf"), "2", True):
        with pytest.raises(ValueError, match="max_seconds"):
            AudioRing(bad)
    with pytest.raises(ValueError, match="max_samples"):
        AudioRing(1.0, max_samples=0)
    with pytest.raises(ValueError, match="gap_tolerance_s"):
        StreamClock(-1.0)


def test_concurrent_push_and_read():
    """A writer thread pushes a ramp while a reader takes windows: every read is
    a run of consecutive samples whose start stamp matches its values."""
    ring = AudioRing(0.5)
    rate, chunk, total = 16000, 160, 16000 * 20
    errors = []
    done = threading.Event()

    def writer():
        try:
            push_stream(ring, total, rate, chunk, t0=0.0 + 1.0)
        finally:
            done.set()

    def reader():
        while not done.is_set():
            x, r, start = ring.latest(0.3)
            if x.size and not (np.all(np.diff(x) == 1.0) and abs((start - 1.0) * r - x[0]) < 0.5):
                errors.append((x[:3], start))

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    np.testing.assert_array_equal(ring.latest(1)[0], ramp(total - 8000, total))
