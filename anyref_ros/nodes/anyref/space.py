"""The answer in space: an object's points, position and oriented box in the
output frame (``target_frame``, or the depth camera's own frame when empty).

For a found object, :meth:`Space.locate` takes the depth image nearest the
frame's stamp (within ``depth_sync_slop_s``), its intrinsics (``depth/
camera_info`` when one has arrived, else ``camera_info``; a size that does
not match the depth image is refused, never guessed), keeps the object's own
points (:func:`anyref_ros.spatial.objects.object_points`), and transforms
them at the colour image's stamp (:mod:`.transforms`). The result says why
when there is no 3D answer; the node then keeps the mask, leaves
``has_position`` false, skips the 3D outputs and says why in the
description and in /diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from sensor_msgs.msg import Image

from anyref_ros.geometry import Intrinsics
from anyref_ros.nodes import conversions as conv
from anyref_ros.spatial.objects import NoObjectDepth, ObjectPoints, OrientedBox, PointFilter, object_points, \
    oriented_box
from anyref_ros.spatial.transforms import TransformUnavailable

from .support import stamp_seconds


@dataclass
class Located:
    """A found object in the output frame ``frame_id`` at the image's stamp."""

    frame_id: str
    position: np.ndarray  # (3,)
    box: OrientedBox
    points: np.ndarray  # (N, 3) float32
    rgb: Optional[np.ndarray]  # (N, 3) uint8
    counts: dict


@dataclass
class Outcome:
    """What :meth:`Space.locate` found: ``located``, or ``problem`` (why not),
    or neither (no depth or camera info configured: nothing to say)."""

    located: Optional[Located] = None
    problem: str = ""
    has_depth: bool = False  # depth and camera info were there (3D outputs are expected)


class Space:
    def __init__(self, node, intake, transforms) -> None:
        self.node = node
        self.intake = intake
        self.transforms = transforms
        self.last_problem = ""

    def locate(self, mask: Optional[np.ndarray], header, rgb: Optional[np.ndarray],
               depth: Optional[Image] = None) -> Outcome:
        """The object under ``mask`` (colour image size) on the frame with ``header``;
        ``mask`` None (nothing found): only whether depth is there."""
        p = self.node.param
        t = stamp_seconds(header)
        slop = p("depth_sync_slop_s")
        candidates = [d for d in (depth, self.intake.depth.nearest(t, slop)) if d is not None]
        depth = min(candidates, key=lambda d: abs(stamp_seconds(d.header) - t), default=None)
        if depth is None or abs(stamp_seconds(depth.header) - t) > slop:
            return Outcome()
        info = self.intake.depth_info or self.intake.camera_info  # depth/camera_info first
        if info is None:
            return Outcome()
        outcome = Outcome(has_depth=True)
        if mask is None:
            return outcome
        try:
            located = self._locate(mask, header, rgb, depth, info)
        except (ValueError, TransformUnavailable, conv.ConversionError) as exc:  # NoObjectDepth is a ValueError
            outcome.problem = str(exc)
            self.last_problem = f"{stamp_seconds(header):.3f} s: {exc}"
            self.node.stats.inc("no_transform" if isinstance(exc, TransformUnavailable) else
                                "no_object_depth" if isinstance(exc, NoObjectDepth) else "depth_refused")
            return outcome
        except Exception as exc:  # noqa: BLE001 - the answer keeps its mask whatever the depth holds
            outcome.problem = f"the 3D answer failed ({type(exc).__name__}: {exc})"
            self.last_problem = f"{stamp_seconds(header):.3f} s: {outcome.problem}"
            self.node.stats.inc("depth_refused")
            return outcome
        outcome.located = located
        return outcome

    def _locate(self, mask, header, rgb, depth: Image, info) -> Located:
        p = self.node.param
        which = "depth/camera_info" if info is self.intake.depth_info else "camera_info"
        if (info.width, info.height) != (depth.width, depth.height):
            raise ValueError(f"the depth image is {depth.width}x{depth.height} but {which} is for "
                             f"{info.width}x{info.height}; publish the depth camera's own info on "
                             "depth/camera_info (a registered depth image of another size needs its own)")
        raw, scale = depth_array(depth, p("depth_unit_mm"))
        how = PointFilter(flying_jump=p("flying_pixel_jump"), gap=p("object_depth_gap"),
                          max_points=p("max_object_points"))
        cloud = object_points(mask, raw, Intrinsics.from_k(info.k, info.width, info.height), rgb, how, scale)
        source = info.header.frame_id or depth.header.frame_id or header.frame_id  # the camera model's frame
        target = p("target_frame").lstrip("/") or source
        matrix = self.transforms.lookup(target, source, stamp_seconds(header) or None, p("tf_timeout_s"))
        return located_in(cloud, matrix, target)

    def output_frame(self) -> str:
        """target_frame, or the depth camera's frame when it is empty."""
        info = self.intake.depth_info or self.intake.camera_info
        return self.node.param("target_frame").lstrip("/") or (info.header.frame_id if info is not None else "")


def located_in(cloud: ObjectPoints, matrix: np.ndarray, frame_id: str) -> Located:
    """``cloud`` (camera frame) moved by ``matrix`` (4x4, camera -> ``frame_id``), with its box there."""
    rot, shift = matrix[:3, :3].astype(np.float32), matrix[:3, 3].astype(np.float32)
    points = cloud.xyz @ rot.T + shift
    position = matrix[:3, :3] @ cloud.position + matrix[:3, 3]
    return Located(frame_id=frame_id, position=position, box=oriented_box(points), points=points,
                   rgb=cloud.rgb, counts=cloud.counts)


def depth_array(msg: Image, millimetres_per_unit: float) -> tuple[np.ndarray, float]:
    """The depth image's pixels as they are (a view) and metres per unit."""
    if msg.encoding not in conv.DEPTH_ENCODINGS:
        raise ValueError(f"depth image encoding must be 16UC1 (mm) or 32FC1 (m), got {msg.encoding!r}")
    arr = conv.image_to_numpy(msg)
    return arr, (millimetres_per_unit / 1000.0 if msg.encoding == "16UC1" else 1.0)
