"""What a sound event's direction costs (``sound_direction_ms`` of anyref-benchmark).

For a 4-mic circular array (3.2 cm radius) hearing a toy sound at 16 kHz from
one of two identical objects in a 640x480 direction scene
(:mod:`~anyref_ros.data.toy_direction`), it times the node's path outside the
network: the direction of arrival on the event's 2 s clip (SRP-PHAT on its
first second, :func:`~anyref_ros.audio.direction.estimate_direction`), its
move into the camera frame, and the choice of the object in that direction
from a mask of both (:func:`~anyref_ros.spatial.sound_source.choose_source`).
Medians over ``repeats`` in milliseconds; nothing here is a pass/fail threshold.
"""

from __future__ import annotations

import statistics
import time

import numpy as np


def measure_direction(repeats: int = 30) -> dict:
    from anyref_ros.audio.direction import estimate_direction
    from anyref_ros.data.toy_direction import ToyDirectionWorld
    from anyref_ros.data.toy_render import ToyObject, object_mask
    from anyref_ros.geometry import Intrinsics
    from anyref_ros.spatial.sound_source import Heard, choose_source

    size = (640, 480)
    sample = ToyDirectionWorld(seed=5, size=size).sample(0, "alike")
    array = sample.metadata["array"]
    both = np.zeros(sample.image.shape[:2], bool)
    for o in sample.metadata["objects"][:2]:  # the two alike objects: what the model masks
        both |= object_mask(ToyObject(**{k: o[k] for k in ("shape", "colour", "rgb", "x0", "y0", "size")}), size)
    fx, fy, cx, cy, w, h = array["camera"]
    k = Intrinsics(fx, fy, cx, cy, int(w), int(h))
    to_camera = np.asarray(array["audio_to_camera"])

    def one() -> dict:
        t = time.perf_counter()
        direction = estimate_direction(sample.audio, sample.sample_rate, array["mic_positions"], array["onset_s"])
        t1 = time.perf_counter()
        choice = choose_source(both, Heard.in_camera(direction, to_camera), k)
        t2 = time.perf_counter()
        assert choice.found
        return {"estimate": (t1 - t) * 1000.0, "join": (t2 - t1) * 1000.0, "total": (t2 - t) * 1000.0}

    one()  # warm-up: the finder's tables
    runs = [one() for _ in range(max(1, repeats))]
    med = {key: round(statistics.median(r[key] for r in runs), 3) for key in ("estimate", "join", "total")}
    return {"sound_direction_ms": med["total"],
            "sound_direction": {"estimate_ms": med["estimate"], "join_ms": med["join"], "microphones": 4,
                                "sample_rate": sample.sample_rate, "image_size": list(size)}}
