"""Answers out: Referral messages (mask, box, description, 3D position), the
mask and debug image, RViz markers, and ~/sound_sources."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from geometry_msgs.msg import Point, PointStamped
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from anyref_ros.drawing import draw_referral
from anyref_ros.geometry import Intrinsics, mask_position
from anyref_ros.msg import Referral
from anyref_ros.nodes import conversions as conv

from .support import stamp_seconds

#: The description of an answer without a mask when the model has no reply of its own for it.
NOT_IN_VIEW = "not in view"


class Publishing:
    """Lifecycle publishers of the node and the Referral they carry."""

    def __init__(self, node, intake) -> None:
        self.node = node
        self.intake = intake
        self.log = node.throttle
        self.pubs: dict = {}

    def create(self) -> None:
        node = self.node
        self.pubs = {
            "results": node.create_lifecycle_publisher(Referral, "~/results", 10),
            "sound_sources": node.create_lifecycle_publisher(Referral, "~/sound_sources", 10),
            "mask": node.create_lifecycle_publisher(Image, "~/mask", 10),
            "debug_image": node.create_lifecycle_publisher(Image, "~/debug_image", 10),
            "markers": node.create_lifecycle_publisher(MarkerArray, "~/markers", 10),
        }

    def destroy(self) -> None:
        pubs, self.pubs = self.pubs, {}
        for pub in pubs.values():
            self.node.destroy_lifecycle_publisher(pub)

    # --------------------------------------------------------------- building
    def referral(self, ref, latency: float, header: Header, query: str, kind: str, depth=None) -> Referral:
        """The Referral for a pipeline answer ``ref`` on a frame with ``header``
        (:func:`build_referral`, with the node's ``min_score``), plus the 3D
        position of a found object. The position uses whichever is nearer in
        time to the frame: ``depth`` (kept when the query was asked) or the
        stored depth image nearest now."""
        msg = build_referral(ref, header, query, kind, latency, self.node.param("min_score"),
                             self._no_object_reply())
        if msg.found:
            self._add_position(msg, ref.mask, header, depth)
        return msg

    def _no_object_reply(self) -> Optional[str]:
        """The loaded model's reply for an absent referent (None: it has none)."""
        pipeline = getattr(self.node.model.engine, "pipeline", None)
        return pipeline.config.prompt.no_object_answer if pipeline is not None else None

    def _add_position(self, msg: Referral, mask: np.ndarray, header: Header, depth=None) -> None:
        info = self.intake.camera_info
        if info is None:
            return
        t, slop = stamp_seconds(header), self.node.param("depth_sync_slop_s")
        candidates = [d for d in (depth, self.intake.depth.nearest(t, slop)) if d is not None]
        depth = min(candidates, key=lambda d: abs(stamp_seconds(d.header) - t), default=None)
        if depth is None or abs(stamp_seconds(depth.header) - t) > slop:
            return
        try:
            metres = conv.depth_to_metres(depth, self.node.param("depth_unit_mm"))
            xyz = mask_position(mask, metres, Intrinsics.from_k(info.k, info.width, info.height))
        except ValueError as exc:
            self.log("warning", "position", f"no 3D position: {exc}")
            return
        if xyz is None or not np.isfinite(xyz).all():
            return
        msg.has_position = True
        msg.position = PointStamped()
        msg.position.header.stamp = header.stamp
        msg.position.header.frame_id = info.header.frame_id or depth.header.frame_id or header.frame_id
        msg.position.point.x, msg.position.point.y, msg.position.point.z = (float(v) for v in xyz)

    # ------------------------------------------------------------- publishing
    def answer(self, msg: Referral, rgb: np.ndarray, mask: np.ndarray, topic: str = "results") -> None:
        """Publish ``msg`` on ~/results (or ~/sound_sources), with its mask,
        debug picture and markers."""
        pubs = self.pubs
        if not pubs:
            return
        pubs[topic].publish(msg)
        if topic == "results" and pubs["mask"].get_subscription_count() > 0:
            pubs["mask"].publish(msg.mask)  # the Referral's own Image: built once, shared
        # The picture is drawn only for a subscriber (drawing a 720p frame costs milliseconds).
        if self.node.param("publish_debug_image") and pubs["debug_image"].get_subscription_count() > 0:
            box = (msg.x_min, msg.y_min, msg.x_max, msg.y_max) if msg.has_box else None
            picture = draw_referral(rgb, mask, box, [msg.description[:80], f"{msg.latency_ms:.0f} ms"],
                                    found=msg.found, score=msg.score, label=msg.query or msg.reference_type)
            pubs["debug_image"].publish(conv.numpy_to_image(picture, "rgb8", msg.header))
        if msg.has_position:
            pubs["markers"].publish(self.markers(msg, "anyref_sound" if topic == "sound_sources" else "anyref"))

    def markers(self, msg: Referral, namespace: str = "anyref") -> MarkerArray:
        lifetime = self.node.param("marker_lifetime_s")
        out = MarkerArray()
        for i, kind in enumerate((Marker.SPHERE, Marker.TEXT_VIEW_FACING)):
            m = Marker()
            m.header = msg.position.header
            m.ns, m.id, m.type, m.action = namespace, i, kind, Marker.ADD
            p = msg.position.point  # copied: rclpy assigns messages by reference
            m.pose.position = Point(x=p.x, y=p.y, z=p.z)
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = 0.05
            m.color.r, m.color.g, m.color.b, m.color.a = (1.0, 0.25, 0.63, 1.0) if namespace == "anyref" else (0.2, 0.8, 1.0, 1.0)
            m.lifetime.sec = int(lifetime)
            m.lifetime.nanosec = int((lifetime % 1.0) * 1e9)
            if kind == Marker.TEXT_VIEW_FACING:
                m.pose.position.z -= 0.08
                m.text = msg.description or msg.query
                m.color.r = m.color.g = m.color.b = 1.0
            out.markers.append(m)
        return out


def build_referral(ref, header: Header, query: str, kind: str, latency: float = 0.0, min_score: float = 0.0,
                   no_object: Optional[str] = None) -> Referral:
    """The Referral of a pipeline answer ``ref``, built once per answer: the
    node publishes it on ``~/results`` (or ``~/sound_sources``) and returns it
    as it is in the ~/segment reply and the ~/refer result, and its mask Image
    is the one published on ``~/mask``.

    ``found`` is true when the answer has a mask whose score is at least
    ``min_score``. Otherwise ``description`` says why: the model's no-object
    reply ``no_object`` ("It is not in view") or "not in view; the model said:
    ..." for an answer without a mask; "not found: score S < min_score M; best
    guess: ..." for a mask scored too low, which is kept (mask, box, area) for
    inspection. ``latency`` is in seconds; nothing here has a 3D position."""
    msg = Referral()
    msg.header = header
    msg.query = query
    msg.reference_type = kind
    text = sentence(ref.text)
    mask = ref.mask
    msg.mask = conv.mask_to_image(mask, header)
    msg.mask_area = int(np.count_nonzero(mask))
    if ref.box is not None:
        msg.has_box = True
        msg.x_min, msg.y_min = int(ref.box[0]), int(ref.box[1])
        msg.x_max, msg.y_max = int(ref.box[2]) - 1, int(ref.box[3]) - 1
    score = float(ref.score)
    score = float(np.clip(score, 0.0, 1.0)) if math.isfinite(score) else 0.0
    msg.score = score
    msg.latency_ms = float(latency * 1000.0)
    if msg.mask_area == 0 or not getattr(ref, "found", True):
        msg.found = False
        reply = sentence(no_object or "")
        msg.description = text if text and text == reply else \
            f"{NOT_IN_VIEW}; the model said: {text}" if text else NOT_IN_VIEW
    elif score < min_score:
        msg.found = False
        msg.description = f"not found: score {score:.3f} < min_score {min_score:g}; best guess: {text}"
    else:
        msg.found = True
        msg.description = text
    return msg


def sentence(text: str) -> str:
    """A model answer as a description: the template ends every answer with "."; it is dropped."""
    return text.strip().removesuffix(".").strip()


def empty_answer(ref) -> bool:
    """True when the model found nothing (``found`` False, or an empty mask)."""
    return not getattr(ref, "found", True) or not bool(np.asarray(ref.mask).any())

