"""Where a sound event came from, for the anyref node (``mic_positions`` set).

For each sound event whose audio holds every microphone of the array:

1. :meth:`SoundDirection.estimate`: the direction of arrival
   (:mod:`anyref_ros.audio.direction`, SRP-PHAT from the onset) in the audio
   frame (the audio headers' ``frame_id``), published on ``~/sound_direction``
   (geometry_msgs/Vector3Stamped, unit vector, stamped at the sound's onset).
2. :meth:`SoundDirection.join`: the audio frame -> camera transform at the
   camera frame's stamp (TF; the identity when both frames have one name or
   the audio frame is empty) and ``camera_info`` (for the image's size) put
   the direction into the image, and
   :func:`anyref_ros.spatial.sound_source.choose_source` turns the model's
   answer into the object in that direction (a depth image of the image's
   size corrects the parallax between array and camera), or "not found"
   with where the sound came from. The model may be asked once more, on a
   crop around the direction.
3. The answer carries the direction in its own frame (``target_frame``, or
   the camera's; the camera's, said in /diagnostics, when the transform to
   ``target_frame`` is missing): ``Referral.has_direction`` / ``direction``.

Without camera info or a transform the answer keeps the model's own mask, and
its description says why the direction was not used; the direction is still
published and carried (in the audio frame when no transform to the camera
was had).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
from geometry_msgs.msg import Vector3Stamped
from std_msgs.msg import Header

from anyref_ros.audio.direction import Direction, NoDirection, estimate_direction
from anyref_ros.geometry import Intrinsics
from anyref_ros.model.processing import mask_box
from anyref_ros.spatial.sound_source import Heard, SourceChoice, choose_source
from anyref_ros.spatial.transforms import TransformUnavailable

from .publishing import sentence
from .space import depth_array
from .support import clip, stamp_seconds


@dataclass
class Joined:
    """A sound answer after its direction was taken into account."""

    ref: object  # the pipeline Referral to publish (mask narrowed to the chosen object, or emptied)
    choice: Optional[SourceChoice]  # None: the direction could not be put into the image (``problem`` says why)
    problem: str
    vector: Optional[np.ndarray]  # the direction in ``frame_id`` (unit)
    frame_id: str


class SoundDirection:
    def __init__(self, node, hearing, intake, transforms) -> None:
        self.node = node
        self.hearing = hearing
        self.intake = intake
        self.transforms = transforms
        self.stats = node.stats
        self.log = node.throttle
        self.pub = None
        self.last_problem = ""

    def create(self) -> None:
        self.pub = self.node.create_lifecycle_publisher(Vector3Stamped, "~/sound_direction", 10)

    def destroy(self) -> None:
        if self.pub is not None:
            self.node.destroy_lifecycle_publisher(self.pub)
            self.pub = None

    # ----------------------------------------------------------------- step 1
    def estimate(self, clip_samples: np.ndarray, rate: int, onset_in_clip: float, onset: float,
                 frame_id: str) -> Optional[Direction]:
        """The direction of a sound event's clip (every microphone), published; None when there is none."""
        if not self.hearing.array_clip(clip_samples):
            return None
        try:
            direction = estimate_direction(clip_samples, rate, self.hearing.mics, onset_in_clip)
        except ValueError as exc:  # NoDirection (nothing to locate) or a clip too short
            self._problem(f"no direction for the sound at {onset:.2f} s: {exc}",
                          "no_direction" if isinstance(exc, NoDirection) else "direction_failed")
            return None
        self.stats.inc("sound_directions")
        if self.pub is not None:
            msg = Vector3Stamped(header=_header(onset, frame_id))
            msg.vector.x, msg.vector.y, msg.vector.z = (float(v) for v in direction.vector)
            self.pub.publish(msg)
        return direction

    # ----------------------------------------------------------------- step 2
    def join(self, ref, direction: Direction, audio_frame: str, header, depth=None,
             ask: Optional[Callable] = None) -> Joined:
        """The answer ``ref`` (on the frame with ``header``) joined with ``direction`` (audio frame)."""
        p = self.node.param
        camera = header.frame_id.lstrip("/")
        stamp = stamp_seconds(header) or None
        try:
            to_camera = self.transforms.lookup(camera, audio_frame.lstrip("/") or camera, stamp, p("tf_timeout_s"))
        except TransformUnavailable as exc:  # carried as heard, in the audio frame
            return self._unjoined(ref, f"direction not put into the image: {exc}", direction.vector,
                                  audio_frame.lstrip("/"))
        heard = Heard.in_camera(direction, to_camera)
        vector, frame_id = self._in_answer_frame(heard.vector, camera, stamp)
        height, width = ref.mask.shape
        info = self.intake.camera_info
        if info is None:
            return self._unjoined(ref, "direction not put into the image: no camera_info has arrived",
                                  vector, frame_id)
        if (info.width, info.height) != (width, height):
            return self._unjoined(ref, f"direction not put into the image: camera_info is for "
                                       f"{info.width}x{info.height}, the image is {width}x{height}", vector, frame_id)
        try:
            k = Intrinsics.from_k(info.k, width, height)
            choice = choose_source(ref.mask if ref.found else np.zeros_like(ref.mask), heard, k,
                                   depth_m=self._depth_m(depth, width, height), ask=ask,
                                   tolerance_deg=p("sound_direction_tolerance_deg"))
        except ValueError as exc:  # a camera model that cannot be used: the model's answer stands
            return self._unjoined(ref, f"direction not put into the image: {exc}", vector, frame_id)
        self.stats.inc("sound_reasked" if choice.reasked else "sound_joined")
        if not choice.in_view:
            self.stats.inc("sound_out_of_view")
        box = mask_box(choice.mask)
        joined = replace(ref, mask=choice.mask, masks=[choice.mask] if choice.found else [], box=box,
                         found=choice.found, score=float(ref.score) if choice.found else 0.0)
        return Joined(joined, choice, "", vector, frame_id)

    def _in_answer_frame(self, vector: np.ndarray, camera: str, stamp) -> tuple[np.ndarray, str]:
        """``vector`` (camera frame) in ``target_frame``; in the camera frame
        (and said in /diagnostics) when that transform is missing: the image
        needs only audio -> camera."""
        p = self.node.param
        target = p("target_frame").lstrip("/") or camera
        try:
            return self.transforms.lookup(target, camera, stamp, p("tf_timeout_s"))[:3, :3] @ vector, target
        except TransformUnavailable as exc:
            self._problem(f"sound direction given in {camera}, not {target}: {exc}", "direction_not_in_target")
            return vector, camera

    def _unjoined(self, ref, problem: str, vector, frame_id: str) -> Joined:
        self._problem(problem, "direction_not_joined")
        return Joined(ref, None, problem, vector, frame_id)

    def _depth_m(self, depth, width: int, height: int) -> Optional[np.ndarray]:
        """The depth image in metres when it is the colour image's size (registered), else None."""
        if depth is None or (depth.width, depth.height) != (width, height):
            return None
        try:
            raw, scale = depth_array(depth, self.node.param("depth_unit_mm"))
        except ValueError:
            return None
        return raw.astype(np.float32) * np.float32(scale)

    def _problem(self, text: str, counter: str) -> None:
        self.stats.inc(counter)
        self.last_problem = clip(text, 300)
        self.log("warning", "sound-direction", self.last_problem)


def apply(msg, joined: Joined, stamp) -> None:
    """Carry the direction (and, for a sound not found in its direction, where it was heard) in ``msg``."""
    if joined.vector is not None:
        msg.has_direction = True
        msg.direction.header.stamp = stamp
        msg.direction.header.frame_id = joined.frame_id
        msg.direction.vector.x, msg.direction.vector.y, msg.direction.vector.z = (float(v) for v in joined.vector)
    if joined.choice is not None and not joined.choice.found:
        said = sentence(joined.ref.text)
        msg.description = joined.choice.note + (f"; the model heard: {said}" if said else "")
    elif joined.problem:
        msg.description = f"{msg.description}; {joined.problem}"


def _header(t: float, frame_id: str) -> Header:
    h = Header(frame_id=frame_id)
    h.stamp.sec, h.stamp.nanosec = int(t // 1), int(round((t % 1.0) * 1e9)) % 1_000_000_000
    return h
