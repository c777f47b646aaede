"""Direction of arrival: accuracy and cost per event (a development measurement, not a test).

    .venv/bin/python benchmarks/direction.py [--repeats 200]

Simulated toy sounds (anyref_ros.data.toy_array_audio: the toy world's circle,
square and triangle sounds, 1 s, far field, azimuths every 10 degrees at
elevation 0, independent room noise per channel) on the example arrays of
config/mic_arrays.yaml. Prints the median / 90th-percentile azimuth error per
case, then the time of one DirectionFinder.estimate (median and best of
--repeats, one thread) on 1 s of audio.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from anyref_ros.audio.direction import DirectionFinder, mic_positions_from_flat  # noqa: E402
from anyref_ros.data.toy_audio import shape_sound  # noqa: E402
from anyref_ros.data.toy_array_audio import array_audio, unit_vector  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ("circle", "square", "triangle")


def errors(positions, azimuths, rate, snr_db, hum_db=None, sound_snr_db=10.0, seed=0):
    finder = DirectionFinder(positions, rate)
    rng = np.random.default_rng(seed)
    out = []
    for shape in SHAPES:
        for az in azimuths:
            sound = shape_sound(rng, shape, 1.0, rate, snr_db=sound_snr_db)
            audio = array_audio(rng, sound, positions, unit_vector(az), sample_rate=rate, snr_db=snr_db,
                                hum_db=hum_db)
            found = finder.estimate(audio).azimuth_deg
            out.append(abs((found - az + 180.0) % 360.0 - 180.0))
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    arrays = {name: mic_positions_from_flat(entry["mic_positions"]) for name, entry in
              yaml.safe_load((ROOT / "config" / "mic_arrays.yaml").read_text()).items()}
    around, front = np.arange(0, 360, 10), np.arange(-80, 81, 10)
    cases = [
        ("circular_4mic_32mm", around, 16000, 10.0, None, 10.0),
        ("circular_4mic_32mm", around, 16000, 0.0, None, 10.0),
        ("circular_4mic_32mm", around, 16000, 10.0, 20.0, 10.0),
        ("circular_4mic_32mm", around, 16000, 10.0, None, 60.0),
        ("circular_6mic_46mm", around, 16000, 10.0, None, 10.0),
        ("circular_6mic_46mm", around, 48000, 10.0, None, 10.0),
        ("pair_60mm", front, 16000, 10.0, None, 10.0),
        ("pair_60mm", front, 16000, 10.0, 20.0, 10.0),
    ]
    print("array                 rate   SNR  hum    sound noise  median  p90   (azimuth error, deg)")
    for name, azimuths, rate, snr, hum, sound_snr in cases:
        e = errors(arrays[name], azimuths, rate, snr, hum, sound_snr)
        print(f"{name:20s} {rate:6d} {snr:4.0f} {'none' if hum is None else f'{hum:+.0f} dB':7s} "
              f"{sound_snr:4.0f} dB    {np.median(e):6.2f} {np.percentile(e, 90):6.2f}")
    print("\ncost of one estimate, 1 s of audio (ms)")
    for name, rate in (("circular_4mic_32mm", 16000), ("circular_6mic_46mm", 16000),
                       ("circular_6mic_46mm", 48000), ("pair_60mm", 16000)):
        positions = arrays[name]
        finder = DirectionFinder(positions, rate)
        audio = array_audio(np.random.default_rng(1), shape_sound(np.random.default_rng(1), "square", 1.0, rate),
                            positions, unit_vector(30.0), sample_rate=rate)
        for _ in range(10):
            finder.estimate(audio)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            finder.estimate(audio)
            times.append(time.perf_counter() - start)
        print(f"{name:20s} {rate:6d} Hz: median {np.median(times) * 1e3:.2f}, best {min(times) * 1e3:.2f}")


if __name__ == "__main__":
    main()
