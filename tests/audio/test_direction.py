"""anyref_ros.audio.direction: SRP-PHAT direction of arrival on simulated
array audio (anyref_ros.data.toy_array_audio), its conventions and its input
checks. Accuracy targets of issue 16; no timing here (benchmarks/direction.py)."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from anyref_ros.audio import direction as D
from anyref_ros.data.toy_array_audio import (
    delay_channels, far_field_delays, shape_array_audio, unit_vector)

REPO = Path(__file__).resolve().parents[2]
ARRAYS = {name: D.mic_positions_from_flat(entry["mic_positions"])
          for name, entry in yaml.safe_load((REPO / "config" / "mic_arrays.yaml").read_text()).items()}
FOUR, SIX, PAIR = ARRAYS["circular_4mic_32mm"], ARRAYS["circular_6mic_46mm"], ARRAYS["pair_60mm"]
SHAPES = ("circle", "square", "triangle")
TETRA = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) * 0.03


def azimuth_error(found: float, true: float) -> float:
    return abs((found - true + 180.0) % 360.0 - 180.0)


def azimuth_errors(positions, azimuths, snr_db, hum_db=None, rate=16000, seed=0):
    finder = D.DirectionFinder(positions, rate)
    rng = np.random.default_rng(seed)
    errors = []
    for k, az in enumerate(azimuths):
        audio = shape_array_audio(rng, SHAPES[k % 3], positions, unit_vector(az), seconds=1.0,
                                  sample_rate=rate, snr_db=snr_db, hum_db=hum_db)
        errors.append(azimuth_error(finder.estimate(audio).azimuth_deg, az))
    return np.array(errors)


def test_example_arrays_load_and_are_what_they_say():
    assert set(ARRAYS) == {"circular_4mic_32mm", "circular_6mic_46mm", "pair_60mm"}
    np.testing.assert_allclose(np.linalg.norm(FOUR, axis=1), 0.032, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(SIX, axis=1), 0.0463, atol=1e-5)
    assert np.linalg.norm(PAIR[0] - PAIR[1]) == pytest.approx(0.06)
    assert [D.DirectionFinder(p, 16000).resolved for p in (FOUR, SIX, PAIR)] == ["hemisphere", "hemisphere", "cone"]
    with pytest.raises(ValueError, match="multiple of 3"):
        D.mic_positions_from_flat([0.0, 0.1, 0.2, 0.3])


def test_simulated_delays_are_fractional_and_signed():
    # a plane wave from +x reaches the microphone at +x first
    delays = far_field_delays(FOUR, (1, 0, 0))
    assert delays[0] < 0 < delays[2] and delays[0] == pytest.approx(-0.032 / 343.0)
    rate, tau = 16000, 0.3 / 16000  # 0.3 of a sample
    t = np.arange(4000) / rate
    sound = np.sin(2 * np.pi * 1000 * t)
    moved = delay_channels(sound, [0.0, tau], rate)
    inner = slice(500, 3500)
    np.testing.assert_allclose(moved[inner, 0], sound[inner], atol=1e-4)
    np.testing.assert_allclose(moved[inner, 1], np.sin(2 * np.pi * 1000 * (t[inner] - tau)), atol=1e-4)


@pytest.mark.parametrize("snr_db", [10.0, 20.0])
def test_four_mic_array_within_5_degrees(snr_db):
    errors = azimuth_errors(FOUR, np.arange(0, 360, 10), snr_db)
    assert np.median(errors) <= 5.0, errors


def test_six_mic_array_within_5_degrees_at_48khz():
    errors = azimuth_errors(SIX, np.arange(5, 360, 30), 10.0, rate=48000)
    assert np.median(errors) <= 5.0, errors


def test_pair_within_10_degrees_in_front():
    # a pair across the head (along y) resolves the front half; +-90 deg is end-fire
    errors = azimuth_errors(PAIR, np.arange(-80, 81, 10), 10.0)
    assert np.median(errors) <= 10.0, errors


def test_pair_returns_the_front_for_a_sound_behind():
    finder = D.DirectionFinder(PAIR, 16000)
    rng = np.random.default_rng(3)
    found = finder.estimate(shape_array_audio(rng, "square", PAIR, unit_vector(150.0), snr_db=20.0))
    assert found.resolved == "cone"
    assert azimuth_error(found.azimuth_deg, 30.0) <= 5.0  # the mirror image in front of the pair
    assert abs(found.elevation_deg) < 1e-6


def test_steady_hum_does_not_pull_the_direction():
    # mains hum as loud as the sound (0 dB) and 20 dB louder than it, common to every channel
    for hum_db in (0.0, 20.0):
        errors = azimuth_errors(FOUR, np.arange(0, 360, 20), 10.0, hum_db=hum_db, seed=1)
        assert np.median(errors) <= 5.0, (hum_db, errors)


def test_elevation_sign_planar_array_returns_the_upper_hemisphere():
    finder = D.DirectionFinder(FOUR, 16000)
    rng = np.random.default_rng(4)
    for el in (35.0, -35.0):
        found = finder.estimate(shape_array_audio(rng, "square", FOUR, unit_vector(60.0, el), snr_db=20.0))
        assert found.resolved == "hemisphere"
        assert found.elevation_deg == pytest.approx(35.0, abs=5.0)  # below the board: its mirror above
        assert azimuth_error(found.azimuth_deg, 60.0) <= 5.0
        assert np.linalg.norm(found.vector) == pytest.approx(1.0)


def test_elevation_sign_volumetric_array_is_resolved():
    finder = D.DirectionFinder(TETRA, 16000)
    assert finder.resolved == "full"
    rng = np.random.default_rng(5)
    for az, el in ((30.0, 40.0), (30.0, -40.0), (-120.0, -60.0)):
        found = finder.estimate(shape_array_audio(rng, "triangle", TETRA, unit_vector(az, el), snr_db=20.0))
        assert found.elevation_deg == pytest.approx(el, abs=5.0)
        assert azimuth_error(found.azimuth_deg, az) <= 5.0


def test_near_field_source():
    rng = np.random.default_rng(6)
    source = np.array([0.8, -0.6, 0.2])  # 1 m away, azimuth -36.9 deg
    found = D.estimate_direction(shape_array_audio(rng, "square", SIX, position=source, snr_db=20.0), 16000, SIX)
    assert azimuth_error(found.azimuth_deg, np.degrees(np.arctan2(-0.6, 0.8))) <= 3.0


def test_confidence_is_high_for_a_sound_and_low_for_noise():
    finder = D.DirectionFinder(FOUR, 16000)
    rng = np.random.default_rng(7)
    sound = finder.estimate(shape_array_audio(rng, "square", FOUR, unit_vector(10.0), snr_db=10.0))
    noise = finder.estimate(rng.normal(0.0, 0.1, size=(16000, 4)).astype(np.float32))
    assert sound.confidence > 0.5 > 0.2 > noise.confidence >= 0.0


def test_silence_and_non_finite_samples():
    finder = D.DirectionFinder(FOUR, 16000)
    with pytest.raises(D.NoDirection, match="all-zero"):
        finder.estimate(np.zeros((16000, 4), np.float32))
    assert issubclass(D.NoDirection, ValueError)
    audio = shape_array_audio(np.random.default_rng(8), "square", FOUR, unit_vector(0.0), snr_db=10.0)
    for bad in (np.nan, np.inf):
        broken = audio.copy()
        broken[100, 2] = bad
        with pytest.raises(ValueError, match="non-finite"):
            finder.estimate(broken)
    # a dead channel only removes its pairs
    dead = audio.copy()
    dead[:, 3] = 0.0
    assert azimuth_error(finder.estimate(dead).azimuth_deg, 0.0) <= 5.0
    # integer PCM is accepted
    assert azimuth_error(finder.estimate((audio * 20000).astype(np.int16)).azimuth_deg, 0.0) <= 5.0


@pytest.mark.parametrize("call, match", [
    (lambda f: f.estimate(np.zeros((16000, 3), np.float32)), "3 channels"),
    (lambda f: f.estimate(np.zeros(16000, np.float32)), "samples, channels"),
    (lambda f: f.estimate(np.ones((100, 4), np.float32)), "at least"),
    (lambda f: f.estimate(np.ones((16000, 4), np.float32), onset_s=2.0), "onset_s"),
    (lambda f: f.estimate(np.ones((16000, 4), np.float32), onset_s=float("nan")), "onset_s"),
])
def test_malformed_calls_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call(D.DirectionFinder(FOUR, 16000))


@pytest.mark.parametrize("positions, rate, match", [
    (np.zeros((1, 3)), 16000, "2..32 channels"),
    (np.zeros((4, 2)), 16000, "channels, 3"),
    (np.array([[0, 0, 0], [0, 0, 0.0005]]), 16000, "1 mm"),
    (np.array([[0, 0, 0], [3.0, 0, 0]]), 16000, "apart"),
    (np.array([[0, 0, 0], [np.nan, 0, 0]]), 16000, "finite"),
    (FOUR, 4000, "sample_rate"),
    (FOUR, 192000, "sample_rate"),
    (FOUR, 16000.0, "sample_rate"),
])
def test_bad_geometry_or_rate_is_refused(positions, rate, match):
    with pytest.raises(ValueError, match=match):
        D.DirectionFinder(positions, rate)


def test_a_long_clip_is_cut_to_the_window_around_the_onset():
    rate = 16000
    rng = np.random.default_rng(9)
    finder = D.DirectionFinder(FOUR, rate)
    # 60 s of quiet room noise with one 1 s sound at 30 s, from azimuth 120 deg
    clip = rng.normal(0.0, 1e-3, size=(60 * rate, 4)).astype(np.float32)
    sound = shape_array_audio(rng, "triangle", FOUR, unit_vector(120.0), seconds=1.0, snr_db=None)
    clip[30 * rate:31 * rate] += sound
    clip[:rate] = np.nan  # far outside the window: never read
    found = finder.estimate(clip, onset_s=30.0)
    assert found.window_s == pytest.approx((30.0 - D.PRE_ONSET_S, 31.0 - D.PRE_ONSET_S))
    assert found.window_s[1] - found.window_s[0] == pytest.approx(D.WINDOW_S)
    assert azimuth_error(found.azimuth_deg, 120.0) <= 5.0
    assert finder.window(60 * rate, 0.0) == (0, rate)  # default onset: the clip's start
    assert finder.window(60 * rate, 59.99) == (int(round((59.99 - D.PRE_ONSET_S) * rate)), 60 * rate)


def test_estimate_direction_caches_the_finder():
    D._finder.cache_clear()
    audio = shape_array_audio(np.random.default_rng(10), "square", FOUR, unit_vector(-45.0), snr_db=20.0)
    first = D.estimate_direction(audio, 16000, FOUR)
    again = D.estimate_direction(audio, 16000, FOUR.tolist())
    assert D._finder.cache_info().hits == 1
    np.testing.assert_allclose(first.vector, again.vector)
    assert azimuth_error(first.azimuth_deg, -45.0) <= 5.0
