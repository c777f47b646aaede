"""The messages grasp planners, navigation and trackers read, built from an
answer: ``vision_msgs`` detections (2D and 3D), the object's points as a
``sensor_msgs/PointCloud2``, and RViz markers of its oriented box.

Conventions (README "Grasping and navigation"): one detection per found
object; ``results[0].hypothesis.class_id`` is the query's text for queries
with text, else the model's short answer; ``score`` the answer's score;
``id`` the answer's id. The 2D box is the Referral's inclusive pixel box:
centre ((x_min + x_max) / 2, (y_min + y_max) / 2), size (x_max - x_min + 1,
y_max - y_min + 1). 3D: the box is the object's oriented box, the
hypothesis' pose is the object's position with the box's orientation.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Header
from vision_msgs.msg import (BoundingBox2D, BoundingBox3D, Detection2D, Detection2DArray, Detection3D,
                             Detection3DArray, ObjectHypothesisWithPose)
from visualization_msgs.msg import Marker

from .space import Located

#: x, y, z float32 and rgb packed in a float32 (0x00RRGGBB), as PCL and RViz read it.
CLOUD_FIELDS = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                for i, n in enumerate(("x", "y", "z", "rgb"))]


def class_id(referral) -> str:
    """The query's text, else the model's short answer ("red circle")."""
    return referral.query or referral.description


def hypothesis(referral) -> ObjectHypothesisWithPose:
    h = ObjectHypothesisWithPose()
    h.hypothesis.class_id = class_id(referral)
    h.hypothesis.score = float(referral.score)
    return h


def detections_2d(referral) -> Detection2DArray:
    """One Detection2D for a found answer; an empty array otherwise (the node looked)."""
    out = Detection2DArray(header=referral.header)
    if referral.found and referral.has_box:
        d = Detection2D(header=referral.header, id=referral.id)
        d.results = [hypothesis(referral)]
        box = BoundingBox2D()
        box.center.position.x = (referral.x_min + referral.x_max) / 2.0
        box.center.position.y = (referral.y_min + referral.y_max) / 2.0
        box.size_x = float(referral.x_max - referral.x_min + 1)
        box.size_y = float(referral.y_max - referral.y_min + 1)
        d.bbox = box
        out.detections = [d]
    return out


def box_pose(located: Located) -> Pose:
    x, y, z, w = (float(v) for v in located.box.quaternion_xyzw)
    c = located.box.center
    return Pose(position=Point(x=float(c[0]), y=float(c[1]), z=float(c[2])), orientation=Quaternion(x=x, y=y, z=z, w=w))


def detections_3d(referral, located: Located | None, header: Header) -> Detection3DArray:
    """One Detection3D (oriented box, position) for a located answer; else empty. ``header``: output frame + stamp."""
    out = Detection3DArray(header=header)
    if located is None:
        return out
    d = Detection3D(header=header, id=referral.id)
    h = hypothesis(referral)
    pose = box_pose(located)
    h.pose.pose.position = Point(x=float(located.position[0]), y=float(located.position[1]),
                                 z=float(located.position[2]))
    h.pose.pose.orientation = pose.orientation
    d.results = [h]
    s = located.box.size
    d.bbox = BoundingBox3D(center=pose, size=Vector3(x=float(s[0]), y=float(s[1]), z=float(s[2])))
    out.detections = [d]
    return out


def object_cloud(located: Located, header: Header) -> PointCloud2:
    """The object's points: unorganised, x y z float32 + rgb, little-endian, dense."""
    n = located.points.shape[0]
    table = np.empty((n, 4), dtype=np.float32)
    table[:, :3] = located.points
    rgb = located.rgb if located.rgb is not None else np.full((n, 3), 255, dtype=np.uint8)
    packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2].astype(np.uint32)
    table[:, 3] = packed.view(np.float32)
    msg = PointCloud2(header=header, height=1, width=n, fields=CLOUD_FIELDS, is_bigendian=False,
                      point_step=16, row_step=16 * n, is_dense=True)
    msg.data = table.tobytes()
    return msg


def box_markers(located: Located, header: Header, label: str, namespace: str, colour, lifetime_s: float) -> list:
    """A CUBE of the oriented box and the label above it."""
    cube = Marker(header=header, ns=namespace, id=0, type=Marker.CUBE, action=Marker.ADD, pose=box_pose(located))
    size = np.maximum(located.box.size, 0.002)  # a flat face still shows
    cube.scale = Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2]))
    cube.color.r, cube.color.g, cube.color.b = colour
    cube.color.a = 0.5
    text = Marker(header=header, ns=namespace, id=1, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, text=label)
    top = located.box.corners()[:, 2].max()
    c = located.box.center
    text.pose.position = Point(x=float(c[0]), y=float(c[1]), z=float(top + 0.04))
    text.pose.orientation.w = 1.0
    text.scale.z = 0.04
    text.color.r = text.color.g = text.color.b = text.color.a = 1.0
    for m in (cube, text):
        m.lifetime.sec = int(lifetime_s)
        m.lifetime.nanosec = int((lifetime_s % 1.0) * 1e9)
    return [cube, text]
