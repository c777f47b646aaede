"""The demo's 3D step: an answer in the robot's frame, as a grasp planner gets it.

A ray-cast 3D toy scene (:mod:`anyref_ros.data.toy_3d`: a blue cylinder and
a yellow box on a table, 640x480 colour, 16UC1 depth, camera info) is shown
to the node with the camera's pose in ``base_link`` on ``/tf_static``; the
node (``target_frame: base_link``) answers "blue circle" with
``~/detections_3d`` and ``~/object_points``. The picture has the answer with
the oriented 3D box drawn back into the image (left) and a top view of the
object's points with the box and the true outline (right); the summary
gets the box's errors against the truth.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

QUERY = "blue circle"
CAMERA_FRAME = "toy_depth_optical"


def scene():
    from anyref_ros.data.toy_3d import Camera, Solid, render

    camera = Camera(position=(0.2, 0.0, 0.6), target=(0.6, 0.0, 0.0))
    solids = [Solid("cylinder", "blue", 0.6, 0.05, (0.08, 0.08, 0.12)), Solid("box", "yellow", 0.55, -0.2, (0.07, 0.07, 0.07))]
    return render(solids, camera, seed=1)


def box_of(detection) -> "OrientedBox":  # noqa: F821 - anyref_ros.spatial.objects
    from pytransform3d.rotations import matrix_from_quaternion

    from anyref_ros.spatial.objects import OrientedBox

    c, q, s = detection.bbox.center.position, detection.bbox.center.orientation, detection.bbox.size
    return OrientedBox(center=np.array([c.x, c.y, c.z]), rotation=matrix_from_quaternion([q.w, q.x, q.y, q.z]),
                       size=np.array([s.x, s.y, s.z]))


def project(points: np.ndarray, pose: np.ndarray, k: list[float]) -> np.ndarray:
    """Base-frame points (N x 3) to pixels of the camera at ``pose`` (base <- optical)."""
    cam = (points - pose[:3, 3]) @ pose[:3, :3]
    return np.stack([k[0] * cam[:, 0] / cam[:, 2] + k[2], k[4] * cam[:, 1] / cam[:, 2] + k[5]], axis=1)


def picture(view, mask: np.ndarray, box, points: np.ndarray, colours: Optional[np.ndarray], lines: list[str],
            score: float) -> np.ndarray:
    import cv2

    from anyref_ros.drawing import draw_box_3d, draw_referral, top_view

    ys, xs = np.nonzero(mask)
    box2d = (xs.min(), ys.min(), xs.max(), ys.max()) if xs.size else None
    left = draw_referral(view.rgb, mask, box2d, lines, found=True, score=score, label=QUERY)
    draw_box_3d(left, project(box.corners(), view.pose, view.camera.k))
    solid = view.solids[0]
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    outline = np.stack([solid.x + solid.size[0] / 2 * np.cos(angles), solid.y + solid.size[1] / 2 * np.sin(angles)], 1)
    bottom = box.corners()[[0, 2, 6, 4], :2]  # z low, around the box
    right = top_view(points[:, :2], colours, bottom, size=left.shape[0], truth_xy=outline,
                     title="top view, base_link (1 cm grid)")
    return np.concatenate([left, cv2.resize(right, (left.shape[0], left.shape[0]))], axis=1)


def run_grasp(demo, namespace: str) -> None:
    """Ask the node for the object in the 3D scene and draw its 3D answer (see the module docstring)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from tf2_msgs.msg import TFMessage
    from vision_msgs.msg import Detection3DArray

    from anyref_ros.nodes.conversions import image_to_mask, numpy_to_image
    from anyref_ros.srv import Segment
    from anyref_ros.nodes.anyref.transforms import transform_stamped

    from .demo import Answer, iou

    node, view = demo.node, scene()
    static = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_publisher(TFMessage, "/tf_static", static).publish(
        TFMessage(transforms=[transform_stamped("base_link", CAMERA_FRAME, view.pose)]))
    depth_pub = node.create_publisher(Image, f"{namespace}/depth", qos_profile_sensor_data)
    info_pub = node.create_publisher(CameraInfo, f"{namespace}/camera_info", qos_profile_sensor_data)
    boxes: list = []
    clouds: list = []
    node.create_subscription(Detection3DArray, f"{namespace}/anyref/detections_3d", boxes.append, 10)
    node.create_subscription(PointCloud2, f"{namespace}/anyref/object_points", clouds.append, 10)
    colour = numpy_to_image(view.rgb, "rgb8")
    colour.header.stamp, colour.header.frame_id = node.get_clock().now().to_msg(), CAMERA_FRAME
    depth = numpy_to_image(np.round(view.depth * 1000.0).astype(np.uint16), "16UC1", colour.header)
    info = CameraInfo(header=colour.header, width=view.camera.width, height=view.camera.height, k=view.camera.k)
    answer = Answer(scene=0, path="segment_3d", query=QUERY, expected=QUERY)
    t0, msg = time.monotonic(), None
    while time.monotonic() - t0 < 60.0:  # depth is BEST_EFFORT: sent until the answer has it
        info_pub.publish(info)
        depth_pub.publish(depth)
        time.sleep(0.2)
        r = demo.call(demo.segment, Segment.Request(text=QUERY, image=colour))
        if r is not None and r.success and (r.result.has_position or "no 3D" in r.result.description):
            msg = r.result
            break
    stamp = (colour.header.stamp.sec, colour.header.stamp.nanosec)
    mine = lambda m: (m.header.stamp.sec, m.header.stamp.nanosec) == stamp  # noqa: E731
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and not ([b for b in boxes if mine(b)] and [c for c in clouds if mine(c)]):
        time.sleep(0.05)
    found3d = [b for b in boxes if mine(b) and b.detections]
    cloud = next((c for c in clouds if mine(c)), None)
    if msg is None or not found3d or cloud is None:
        answer.message = "no 3D answer" + (f": {msg.description}" if msg is not None else "")
        demo._report(answer)
        return
    box = box_of(found3d[0].detections[0])
    table = np.frombuffer(bytes(cloud.data), dtype=np.float32).reshape(-1, 4)
    packed = table[:, 3].view(np.uint32)
    colours = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
    mask = image_to_mask(msg.mask)
    solid = view.solids[0]
    answer.success, answer.message, answer.found, answer.score = True, "ok", bool(msg.found), float(msg.score)
    answer.description, answer.latency_ms = msg.description, float(msg.latency_ms)
    answer.iou = iou(mask, view.masks[0])
    answer.spatial = {"frame": found3d[0].header.frame_id, "points": int(table.shape[0]),
                      "box_centre_m": [round(float(v), 4) for v in box.center],
                      "box_size_m": [round(float(v), 4) for v in box.size],
                      "centre_error_cm": round(float(np.linalg.norm(box.center - solid.center)) * 100, 2),
                      "true_size_m": list(solid.size)}
    lines = [f"answer: {msg.description}",
             f"box in base_link: centre off {answer.spatial['centre_error_cm']:.1f} cm, size "
             + " x ".join(f"{v * 100:.1f}" for v in box.size) + " cm"]
    from PIL import Image as PILImage

    name = f"{len(demo.answers):03d}_segment_3d.png"
    PILImage.fromarray(picture(view, mask, box, table[:, :3], colours, lines, answer.score)).save(
        demo.out / "answers" / name)
    answer.picture = f"answers/{name}"
    demo._report(answer)
