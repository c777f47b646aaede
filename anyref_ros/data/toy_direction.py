"""Toy scenes where only the direction of a sound tells which object made it.

Each scene is a toy image (:mod:`~anyref_ros.data.toy_render`) seen by a
pinhole camera of :data:`HFOV_DEG` horizontal field of view, and the
sound of one shape heard by a microphone array
(:mod:`~anyref_ros.data.toy_array_audio`, fractional near-field delays from
the source's position, independent room noise per channel). Two kinds:

* ``"alike"``: two identical objects (same shape, same colour) and 0-2
  others of other shapes; one of the two makes the sound. Its position is
  its mask's centroid ray at a depth of 1-3 m.
* ``"out_of_view"``: one object of the sound's shape in view (a decoy) and
  0-2 others, while the sound comes from outside the field of view (azimuth
  :data:`OUT_OF_VIEW_MARGIN_DEG` to 170 degrees off the optical axis, either
  side, elevation within 15 degrees, 1-3 m away). The right answer is "not
  found", with the direction.

The array's frame is a robot's (REP 103: x forward, y left, z up) with the
array's centre :data:`ARRAY_ABOVE_M` above the camera, so the sound's
direction seen from the array differs from its pixel's ray (parallax) and
the audio -> camera rotation is not the identity. The clip: 0.25 s of room
noise, then the sound (1.75 s), at a per-channel SNR of 10-20 dB.

A scene is a :class:`~anyref_ros.data.sample.Sample` of task "audio" whose
``audio`` is (samples, channels) and whose ``metadata["array"]`` holds
``mic_positions`` (channels x 3), ``audio_to_camera`` (4 x 4), ``camera``
(fx, fy, cx, cy, width, height), ``onset_s``, ``direction`` (the true unit
vector from the array's centre to the source, camera frame), ``in_view``
and ``kind``. ``masks`` holds the sounding object's mask (empty out of
view). Every scene is a pure function of ``(seed, kind, index)``.
"""

from __future__ import annotations

import math

import numpy as np

from .sample import SEG_TOKEN, Sample, format_answer
from .toy_array_audio import array_audio
from .toy_audio import SAMPLE_RATE, shape_sound
from .toy_render import COLOURS, SHAPES, place_objects, render_scene, scaled_size_range

HFOV_DEG = 60.0
ARRAY_ABOVE_M = 0.06
ONSET_S = 0.25
SOUND_S = 1.75
DEPTH_M = (1.0, 3.0)
SNR_DB = (10.0, 20.0)
OUT_OF_VIEW_MARGIN_DEG = 8.0  # out-of-view sources are at least this far outside the field of view
KINDS = ("alike", "out_of_view")
#: A 4-mic circular array of 3.2 cm radius in the horizontal plane (config/mic_arrays.yaml).
CIRCULAR_4MIC = tuple((0.032 * math.cos(a), 0.032 * math.sin(a), 0.0) for a in np.arange(4) * math.pi / 2)

#: Points in the robot-style audio frame (x forward, y left, z up) -> camera optical frame.
_ROT = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def audio_to_camera(above_m: float = ARRAY_ABOVE_M) -> np.ndarray:
    """4x4: the array's frame (REP 103) ``above_m`` above the camera -> camera optical frame."""
    m = np.eye(4)
    m[:3, :3] = _ROT
    m[:3, 3] = (0.0, -above_m, 0.0)
    return m


def camera_for(size: tuple[int, int], hfov_deg: float = HFOV_DEG) -> tuple[float, float, float, float, int, int]:
    """Pinhole (fx, fy, cx, cy, width, height) with square pixels for an image ``size`` (W, H)."""
    w, h = size
    f = (w / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return f, f, (w - 1) / 2.0, (h - 1) / 2.0, int(w), int(h)


def point_of(mask: np.ndarray, camera, depth_m: float) -> np.ndarray:
    """The 3D point (camera optical frame) of ``mask``'s pixel centroid at ``depth_m``;
    ``camera``: (fx, fy, cx, cy, ...)."""
    fx, fy, cx, cy = camera[:4]
    ys, xs = np.nonzero(mask)
    return np.array([(xs.mean() - cx) / fx, (ys.mean() - cy) / fy, 1.0]) * depth_m


def heard_from(rng: np.random.Generator, sound: np.ndarray, point: np.ndarray, mics=CIRCULAR_4MIC,
               to_camera: np.ndarray | None = None, snr_db: float | None = None,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(samples, channels): mono ``sound`` made at ``point`` (camera optical
    frame, metres) as the array ``mics`` (its own frame, ``to_camera`` -> the
    camera's; default :func:`audio_to_camera`) hears it (near-field fractional
    delays, room noise at ``snr_db`` per channel, None = none)."""
    m = audio_to_camera() if to_camera is None else np.asarray(to_camera, dtype=np.float64)
    rot, shift = m[:3, :3], m[:3, 3]
    return array_audio(rng, sound, np.asarray(mics, dtype=np.float64), position=rot.T @ (point - shift),
                       sample_rate=sample_rate, snr_db=snr_db)


class ToyDirectionWorld:
    """Deterministic direction scenes (module docstring).

    ``mic_positions``: the array (channels x 3, metres, audio frame);
    ``seed``: the held-out protocol of :mod:`~anyref_ros.data.toy` applies
    (evaluation uses 0)."""

    def __init__(self, seed: int, size: tuple[int, int] = (160, 120), mic_positions=CIRCULAR_4MIC,
                 seg_token: str = SEG_TOKEN) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed, self.size, self.seg_token = seed, tuple(size), seg_token
        self.mics = np.asarray(mic_positions, dtype=np.float64)
        self.camera = camera_for(self.size)
        self.to_camera = audio_to_camera()

    def sample(self, index: int, kind: str) -> Sample:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        rng = np.random.default_rng([self.seed, index, KINDS.index(kind) + 11])
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        others = [(c, s) for c in COLOURS for s in SHAPES if s != shape]
        picks = rng.choice(len(others), size=int(rng.integers(0, 3)), replace=False)
        alike = 2 if kind == "alike" else 1
        specs = [(colour, shape)] * alike + [others[int(i)] for i in picks]
        objects = place_objects(rng, specs, self.size, scaled_size_range(self.size))
        image, masks = render_scene(objects, self.size, rng)
        depth = float(rng.uniform(*DEPTH_M))
        if kind == "alike":
            target = int(rng.integers(2))
            point = point_of(masks[target], self.camera, depth)
            target_masks = [masks[target]]
        else:
            target = None
            half = HFOV_DEG / 2.0 + OUT_OF_VIEW_MARGIN_DEG
            az = math.radians(float(rng.uniform(half, 170.0)) * (1 if rng.uniform() < 0.5 else -1))
            el = math.radians(float(rng.uniform(-15.0, 15.0)))
            point = depth * np.array([math.sin(az) * math.cos(el), -math.sin(el), math.cos(az) * math.cos(el)])
            target_masks = []
        rot, shift = self.to_camera[:3, :3], self.to_camera[:3, 3]
        origin = rot @ self.mics.mean(axis=0) + shift
        truth = (point - origin) / np.linalg.norm(point - origin)
        sound = np.concatenate([np.zeros(int(ONSET_S * SAMPLE_RATE), np.float32),
                                shape_sound(rng, shape, SOUND_S, SAMPLE_RATE)])
        audio = heard_from(rng, sound, point, self.mics, self.to_camera, float(rng.uniform(*SNR_DB)))
        description = shape
        return Sample(
            image=image, task="audio", audio=audio, sample_rate=SAMPLE_RATE, description=description,
            answer=format_answer(description, self.seg_token), masks=target_masks,
            metadata={"seed": self.seed, "index": index, "target": target, "eval_group": f"direction_{kind}",
                      "objects": [o.to_dict() for o in objects], "absent": kind == "out_of_view",
                      "array": {"mic_positions": self.mics.tolist(), "audio_to_camera": self.to_camera.tolist(),
                                "camera": list(self.camera), "onset_s": ONSET_S, "direction": truth.tolist(),
                                "in_view": kind == "alike", "kind": kind}})
