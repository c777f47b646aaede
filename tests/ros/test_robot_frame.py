"""Answers in the robot's frame, as a grasp planner or Nav2 would read them:
the node (model/toy, its own process) answers on ray-cast 3D toy scenes
(anyref_ros.data.toy_3d: colour, 16UC1 depth and camera info of a camera whose
pose is on /tf_static), and the test checks ~/detections, ~/detections_3d,
~/object_points, ~/markers and Referral.position against the scene's truth;
a robot driving at 1 m/s on /tf with a frame 0.5 s old; and the documented
answers without a transform, with depth of the wrong size, with empty depth,
and with depth misregistered across the object's outline."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from anyref_ros.data.toy_3d import Camera, Solid, render
from anyref_ros.geometry import Intrinsics
from anyref_ros.nodes.anyref.transforms import transform_stamped
from anyref_ros.nodes.conversions import image_to_mask, numpy_to_image
from anyref_ros.spatial.objects import object_points
from anyref_ros.srv import Segment
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import Marker, MarkerArray

from node_harness import Client, anyref_status, set_param, toy_node
from testsupport import REPO

NS = "/r3d"
CAMERA = Camera(position=(0.2, 0.0, 0.6), target=(0.6, 0.0, 0.0))
TARGET = Solid("cylinder", "blue", 0.6, 0.05, (0.08, 0.08, 0.12))
OTHER = Solid("box", "yellow", 0.55, -0.2, (0.07, 0.07, 0.07))
CAMERA_FRAME = "camera_optical"

pytestmark = pytest.mark.skipif(not (REPO / "model" / "toy" / "config.json").is_file(),
                                reason="model/toy (the trained toy checkpoint) is not in this checkout")


def stamp_of(t: float):
    msg = Image().header.stamp
    msg.sec, msg.nanosec = int(t), int(round((t % 1.0) * 1e9)) % 1_000_000_000
    return msg


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Scene:
    """The test's camera and robot: publishes what a robot's drivers would."""

    def __init__(self, client: Client) -> None:
        self.client = client
        node = client.node
        self.depth_pub = node.create_publisher(Image, f"{NS}/depth", qos_profile_sensor_data)
        self.info_pub = node.create_publisher(CameraInfo, f"{NS}/camera_info", qos_profile_sensor_data)
        self.depth_info_pub = node.create_publisher(CameraInfo, f"{NS}/depth/camera_info", qos_profile_sensor_data)
        static_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.static_pub = node.create_publisher(TFMessage, "/tf_static", static_qos)
        self.tf_pub = node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.segment = client.service(Segment, "segment", timeout=120)
        self.static_pub.publish(TFMessage(transforms=[transform_stamped("base_link", CAMERA_FRAME, CAMERA.pose())]))

    def now(self) -> float:
        return self.client.node.get_clock().now().nanoseconds * 1e-9

    @staticmethod
    def info(camera: Camera = CAMERA) -> CameraInfo:
        msg = CameraInfo(width=camera.width, height=camera.height, k=camera.k)
        msg.header.frame_id = CAMERA_FRAME
        return msg

    def ask(self, text: str, view, t: float, depth: np.ndarray | None = None, until=lambda r: True,
            info: CameraInfo | None = None, depth_info: CameraInfo | None = None, timeout: float = 60.0):
        """Segment ``text`` on the view's colour image stamped ``t``, depth (16UC1 mm) with
        the same stamp sent until the answer satisfies ``until``; the Referral."""
        header = Image().header
        header.stamp, header.frame_id = stamp_of(t), CAMERA_FRAME
        colour = numpy_to_image(view.rgb, "rgb8", header)
        mm = np.round((view.depth if depth is None else depth) * 1000.0).astype(np.uint16)
        depth_msg = numpy_to_image(mm, "16UC1", header)
        info = info or self.info()
        info.header.stamp = header.stamp

        def send():
            self.info_pub.publish(info)
            if depth_info is not None:
                self.depth_info_pub.publish(depth_info)
            self.depth_pub.publish(depth_msg)

        def answered():
            r = self.client.call(self.segment, Segment.Request(text=text, image=colour))
            assert r.success, r.message
            return until(r.result) and r.result

        return self.client.wait_for(answered, timeout, f"an answer to {text!r}", resend=send, every=0.3)


@pytest.fixture(scope="module")
def system():
    with toy_node(NS, "-p", "target_frame:=base_link", "-p", "max_frame_age_s:=0.0") as client:
        scene = Scene(client)
        outputs = {name: client.listen(kind, f"{NS}/anyref/{name}") for name, kind in (
            ("detections", Detection2DArray), ("detections_3d", Detection3DArray),
            ("object_points", PointCloud2), ("markers", MarkerArray))}
        outputs["diagnostics"] = client.listen(DiagnosticArray, "/diagnostics")
        yield client, scene, outputs


@pytest.fixture(scope="module")
def view():
    return render([TARGET, OTHER], CAMERA, seed=1)


def stamped(messages: list, t: float, what: str, timeout: float = 10.0):
    """The first message in ``messages`` whose header has stamp ``t``."""
    return Client.wait_for(lambda: next((m for m in list(messages) if abs(seconds(m.header.stamp) - t) < 1e-6), None),
                           timeout, f"{what} stamped {t:.3f}")


def cloud_points(msg: PointCloud2) -> np.ndarray:
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"] and msg.point_step == 16
    return np.frombuffer(bytes(msg.data), dtype=np.float32).reshape(-1, 4)[:, :3].astype(np.float64)


def test_answer_in_base_link(system, view):
    client, scene, out = system
    t = scene.now()
    result = scene.ask("blue circle", view, t, until=lambda r: r.has_position)
    assert result.found and result.id
    assert result.position.header.frame_id == "base_link" and seconds(result.position.header.stamp) == pytest.approx(t)

    d2 = stamped(out["detections"], t, "~/detections")
    assert d2.header.frame_id == CAMERA_FRAME and len(d2.detections) == 1
    det = d2.detections[0]
    assert det.id == result.id and det.results[0].hypothesis.class_id == "blue circle"
    assert det.results[0].hypothesis.score == pytest.approx(result.score, abs=1e-6)
    box = det.bbox  # the Referral's inclusive pixel box
    assert (box.center.position.x, box.center.position.y) == ((result.x_min + result.x_max) / 2,
                                                              (result.y_min + result.y_max) / 2)
    assert (box.size_x, box.size_y) == (result.x_max - result.x_min + 1, result.y_max - result.y_min + 1)

    d3 = stamped(out["detections_3d"], t, "~/detections_3d")
    assert d3.header.frame_id == "base_link" and len(d3.detections) == 1
    det3 = d3.detections[0]
    assert det3.id == result.id and det3.header.frame_id == "base_link"
    c, s = det3.bbox.center.position, det3.bbox.size
    assert np.linalg.norm([c.x - TARGET.x, c.y - TARGET.y, c.z - TARGET.size[2] / 2]) < 0.01, c
    true_size = np.array([TARGET.size[0], TARGET.size[1], TARGET.size[2]])
    assert np.all(np.abs(np.array([s.x, s.y, s.z]) - true_size) <= 0.10 * true_size), s
    p = det3.results[0].pose.pose.position
    assert (p.x, p.y, p.z) == pytest.approx((result.position.point.x, result.position.point.y,
                                             result.position.point.z), abs=1e-6)

    points = cloud_points(stamped(out["object_points"], t, "~/object_points"))
    assert out["object_points"][-1].header.frame_id == "base_link"
    assert 100 < points.shape[0] <= 20000
    assert TARGET.contains(points, grow=0.01).mean() >= 0.95

    markers = Client.wait_for(lambda: next((m for m in list(out["markers"])
                                            if abs(seconds(m.markers[0].header.stamp) - t) < 1e-6), None), 10, "markers")
    cube = markers.markers[0]
    assert cube.type == Marker.CUBE and cube.header.frame_id == "base_link"
    assert markers.markers[1].text == "blue circle"

    mask = image_to_mask(result.mask)
    truth = view.masks[0]
    assert (mask & truth).sum() / (mask | truth).sum() > 0.8


def test_not_found_publishes_empty_detections(system, view):
    client, scene, out = system
    t = scene.now()
    result = scene.ask("green triangle", view, t)
    assert not result.found and not result.has_position
    assert stamped(out["detections"], t, "~/detections").detections == []
    empty = stamped(out["detections_3d"], t, "~/detections_3d")
    assert empty.detections == [] and empty.header.frame_id == "base_link"


def test_moving_robot_frame_half_a_second_old(system, view):
    """The robot drives at 1 m/s (odom <- base_link on /tf at 50 Hz); the frame is
    0.5 s old when asked. Looking up the latest transform instead of the frame's
    would put the object ~0.5 m off."""
    client, scene, out = system
    t0 = scene.now()
    stop_driving = threading.Event()

    def pose(t: float) -> np.ndarray:
        m = np.eye(4)
        m[0, 3] = 1.0 * (t - t0)
        return m

    def drive():
        while not stop_driving.is_set():
            t = scene.now()
            scene.tf_pub.publish(TFMessage(transforms=[transform_stamped("odom", "base_link", pose(t), t)]))
            time.sleep(0.02)

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        set_param(client, "target_frame", "odom")
        time.sleep(1.5)  # the robot has moved 1.5 m
        t = scene.now() - 0.5
        x_robot = pose(t)[0, 3]
        result = scene.ask("blue circle", view, t, until=lambda r: r.has_position or "no 3D" in r.description)
    finally:
        stop_driving.set()
        driver.join(2)
        set_param(client, "target_frame", "base_link")
    assert result.has_position, result.description
    assert result.position.header.frame_id == "odom"
    # Truth: the object's visible points (exact mask) in base_link at the frame's stamp, moved by the robot's pose then.
    cloud = object_points(view.masks[0], view.depth, Intrinsics.from_k(CAMERA.k, CAMERA.width, CAMERA.height))
    expected = CAMERA.pose()[:3, :3] @ cloud.position + CAMERA.pose()[:3, 3] + [x_robot, 0.0, 0.0]
    p = result.position.point
    assert np.linalg.norm([p.x - expected[0], p.y - expected[1], p.z - expected[2]]) < 0.02, (p, expected)
    d3 = stamped(out["detections_3d"], t, "~/detections_3d")
    c = d3.detections[0].bbox.center.position
    assert np.linalg.norm([c.x - TARGET.x - x_robot, c.y - TARGET.y, c.z - TARGET.size[2] / 2]) < 0.02


def test_missing_transform_keeps_the_mask_and_says_why(system, view):
    client, scene, out = system
    set_param(client, "target_frame", "gripper_tip")
    try:
        t = scene.now()
        result = scene.ask("blue circle", view, t, until=lambda r: "no 3D position" in r.description)
    finally:
        set_param(client, "target_frame", "base_link")
    assert result.found and not result.has_position and result.mask_area > 0
    assert f"no 3D position: no transform gripper_tip <- {CAMERA_FRAME} at {t:.3f} s" in result.description
    assert stamped(out["detections"], t, "~/detections").detections  # the 2D answer stands
    time.sleep(0.5)
    assert not [m for m in out["detections_3d"] if abs(seconds(m.header.stamp) - t) < 1e-6]

    values = Client.wait_for(lambda: (s := anyref_status(out["diagnostics"])) and
                             "gripper_tip" in s[2].get("last_3d_problem", "") and s[2], 5, "the problem in /diagnostics")
    assert int(values["no_transform"]) >= 1


def test_depth_all_zeros(system, view):
    client, scene, out = system
    t = scene.now()
    result = scene.ask("blue circle", view, t, depth=np.zeros_like(view.depth),
                       until=lambda r: "no 3D position" in r.description)
    assert result.found and not result.has_position
    assert "no valid depth under the mask" in result.description


def test_mask_on_a_depth_edge(system, view):
    """Depth 6 px off the colour image (a badly registered camera): part of the mask
    lies on the table behind the object; those points are not the object's."""
    client, scene, out = system
    shifted = np.zeros_like(view.depth)
    shifted[:, 6:] = view.depth[:, :-6]
    t = scene.now()
    result = scene.ask("blue circle", view, t, depth=shifted, until=lambda r: r.has_position)
    points = cloud_points(stamped(out["object_points"], t, "~/object_points"))
    assert TARGET.contains(points, grow=0.01).mean() >= 0.95
    p = result.position.point
    assert TARGET.contains(np.array([[p.x, p.y, p.z]]), grow=0.01).all()


def test_depth_of_another_size(system, view):
    """A registered depth image at half the size: refused with the reason while only the
    colour camera_info is there; answered once depth/camera_info describes it. (Last:
    the node keeps the depth camera info.)"""
    client, scene, out = system
    half = view.depth[::2, ::2]
    t = scene.now()
    result = scene.ask("blue circle", view, t, depth=half, until=lambda r: "no 3D position" in r.description)
    assert "the depth image is 320x240 but camera_info is for 640x480" in result.description
    small = Camera(width=320, height=240, focal=CAMERA.focal / 2)
    depth_info = scene.info(small)
    k = list(depth_info.k)
    k[2], k[5] = (CAMERA.width - 1) / 4, (CAMERA.height - 1) / 4  # every second pixel of the colour image's grid
    depth_info.k = k
    t = scene.now()
    result = scene.ask("blue circle", view, t, depth=half, depth_info=depth_info, until=lambda r: r.has_position)
    d3 = stamped(out["detections_3d"], t, "~/detections_3d")
    c = d3.detections[0].bbox.center.position
    assert np.linalg.norm([c.x - TARGET.x, c.y - TARGET.y, c.z - TARGET.size[2] / 2]) < 0.015
