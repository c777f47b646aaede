"""Answers out: Referral messages (mask, box, description, 3D position), the
mask and debug image, vision_msgs detections (2D, 3D), the object's points,
RViz markers, and ~/sound_sources.

Every answer is published on ``~/detections`` (empty when nothing was
found: a consumer knows the node looked) and, when depth and camera info are
there, on ``~/detections_3d``; a located object's points go on
``~/object_points`` and its box and label on ``~/markers``, all in the
output frame (:mod:`.space`) with the image's stamp.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from geometry_msgs.msg import PointStamped
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import MarkerArray

from anyref_ros.drawing import draw_referral
from anyref_ros.msg import Referral
from anyref_ros.nodes import conversions as conv

from . import detections as det
from .space import Outcome, Space

#: The description of an answer without a mask when the model has no reply of its own for it.
NOT_IN_VIEW = "not in view"
MARKER_COLOURS = {"results": (1.0, 0.25, 0.63), "sound_sources": (0.2, 0.8, 1.0)}


@dataclass
class Answer:
    """A Referral with its place in space (``outcome``), ready to publish."""

    msg: Referral
    outcome: Outcome


class Publishing:
    """Lifecycle publishers of the node and the Referral they carry."""

    def __init__(self, node, intake, transforms) -> None:
        self.node = node
        self.intake = intake
        self.space = Space(node, intake, transforms)
        self.log = node.throttle
        self.pubs: dict = {}
        self._ids = itertools.count(1)

    def create(self) -> None:
        node = self.node
        self.pubs = {
            "results": node.create_lifecycle_publisher(Referral, "~/results", 10),
            "sound_sources": node.create_lifecycle_publisher(Referral, "~/sound_sources", 10),
            "mask": node.create_lifecycle_publisher(Image, "~/mask", 10),
            "debug_image": node.create_lifecycle_publisher(Image, "~/debug_image", 10),
            "markers": node.create_lifecycle_publisher(MarkerArray, "~/markers", 10),
            "detections": node.create_lifecycle_publisher(Detection2DArray, "~/detections", 10),
            "detections_3d": node.create_lifecycle_publisher(Detection3DArray, "~/detections_3d", 10),
            "object_points": node.create_lifecycle_publisher(PointCloud2, "~/object_points", 10),
        }

    def destroy(self) -> None:
        pubs, self.pubs = self.pubs, {}
        for pub in pubs.values():
            self.node.destroy_lifecycle_publisher(pub)

    # --------------------------------------------------------------- building
    def referral(self, ref, latency: float, header: Header, query: str, kind: str, rgb=None, depth=None) -> Answer:
        """The Referral for a pipeline answer ``ref`` on a frame with ``header``
        (:func:`build_referral`, with the node's ``min_score``), with a found
        object's place in space. The 3D answer uses whichever is nearer in time
        to the frame: ``depth`` (kept when the query was asked) or the stored
        depth image nearest now."""
        msg = build_referral(ref, header, query, kind, latency, self.node.param("min_score"),
                             self._no_object_reply())
        msg.id = str(next(self._ids))
        outcome = self.space.locate(ref.mask if msg.found else None, header, rgb, depth)
        if outcome.located is not None:
            msg.has_position = True
            p = outcome.located.position
            msg.position = PointStamped(header=Header(stamp=header.stamp, frame_id=outcome.located.frame_id))
            msg.position.point.x, msg.position.point.y, msg.position.point.z = (float(v) for v in p)
        elif outcome.problem:
            msg.description = f"{msg.description}; no 3D position: {outcome.problem}"
            self.log("warning", "no-3d", f"answer {msg.id}: no 3D position: {outcome.problem}")
        return Answer(msg, outcome)

    def unanswered(self, query: str, reason: str, frame=None) -> None:
        """Publish on ~/results that the topic query ``query`` was not answered, and why
        (found: false, description "not answered: <why>"; the latest frame's header, if any)."""
        if not self.pubs:
            return
        msg = Referral(query=query, reference_type=Referral.TYPE_TEXT, found=False,
                       description=f"not answered: {reason}", id=str(next(self._ids)))
        if frame is not None:
            msg.header = frame.header
        else:
            msg.header.stamp = self.node.get_clock().now().to_msg()
        self.pubs["results"].publish(msg)

    def _no_object_reply(self) -> Optional[str]:
        """The loaded model's reply for an absent referent (None: it has none)."""
        pipeline = getattr(self.node.model.engine, "pipeline", None)
        return pipeline.config.prompt.no_object_answer if pipeline is not None else None

    # ------------------------------------------------------------- publishing
    def answer(self, answer: Answer, rgb: np.ndarray, mask: np.ndarray, topic: str = "results") -> None:
        """Publish ``answer`` on ~/results (or ~/sound_sources), with its mask,
        debug picture, detections, points and markers."""
        pubs, msg = self.pubs, answer.msg
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
        pubs["detections"].publish(det.detections_2d(msg))
        self.publish_3d(answer, topic)

    def publish_3d(self, answer: Answer, topic: str) -> None:
        located, msg = answer.outcome.located, answer.msg
        if not answer.outcome.has_depth or (msg.found and located is None):
            return  # no depth configured, or no 3D answer (the description says why)
        frame = located.frame_id if located is not None else self.space.output_frame()
        header = Header(stamp=msg.header.stamp, frame_id=frame)
        self.pubs["detections_3d"].publish(det.detections_3d(msg, located, header))
        if located is None:
            return
        if self.pubs["object_points"].get_subscription_count() > 0:
            self.pubs["object_points"].publish(det.object_cloud(located, header))
        label = det.class_id(msg)
        namespace = "anyref_sound" if topic == "sound_sources" else "anyref"
        self.pubs["markers"].publish(MarkerArray(markers=det.box_markers(
            located, header, label, namespace, MARKER_COLOURS.get(topic, MARKER_COLOURS["results"]),
            self.node.param("marker_lifetime_s"))))


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
    inspection. ``latency`` is in seconds; nothing here has a 3D position or id."""
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

