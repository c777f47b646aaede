"""Standing queries, as a tracker or a following behaviour uses them: the node
(model/toy, its own process) watches what the ``watch`` parameter and the
``~/watch`` service name, on a 10 Hz camera of toy scenes whose objects move,
leave and come back; the test checks ~/detections (boxes against the truth
of the frame each answer is stamped with, ids for life), ~/labels and
~/label_info, ~/target_pose, runtime changes, one-shot queries among
standing ones, and refusals of bad standing queries."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from anyref_ros.data.toy_render import COLOURS, render_exemplar
from anyref_ros.nodes.conversions import image_to_numpy, mask_to_image, numpy_to_image
from anyref_ros.srv import Segment, Watch
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

from node_harness import Client, toy_node
from testsupport import REPO

NS = "/watch"
W, H = 320, 240
SQUARE = (50, 160)  # the blue square: fixed, top-left corner (x, y); side 40

pytestmark = pytest.mark.skipif(not (REPO / "model" / "toy" / "config.json").is_file(),
                                reason="model/toy (the trained toy checkpoint) is not in this checkout")


class MovingScene:
    """A red circle moving left and right (or away), a blue square still; 10 Hz BEST_EFFORT,
    with depth and camera info. ``truth[stamp]`` = the circle's box (x0, y0, x1, y1) or None."""

    def __init__(self, client: Client) -> None:
        node = client.node
        self.client = client
        self.pubs = {"image": node.create_publisher(Image, f"{NS}/image", qos_profile_sensor_data),
                     "depth": node.create_publisher(Image, f"{NS}/depth", qos_profile_sensor_data),
                     "info": node.create_publisher(CameraInfo, f"{NS}/camera_info", qos_profile_sensor_data)}
        self.truth: dict[tuple[int, int], object] = {}
        self.away = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def circle_x(self, t: float) -> float:
        return 170 + 90 * np.sin(t * 0.8)  # centre x, about 70 px/s at most

    def frame(self, t: float):
        rgb = np.full((H, W, 3), 128, np.uint8)
        x0, y0 = SQUARE
        rgb[y0:y0 + 40, x0:x0 + 40] = COLOURS["blue"]
        yy, xx = np.mgrid[:H, :W]
        box = None
        if not self.away:
            cx, cy, r = self.circle_x(t), 90.0, 24.0
            inside = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r
            rgb[inside] = COLOURS["red"]
            ys, xs = np.nonzero(inside)
            box = (xs.min(), ys.min(), xs.max(), ys.max())
        depth = np.full((H, W), 1500, np.uint16)
        depth[np.any(rgb != 128, axis=2)] = 1000
        return rgb, depth, box

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self.client.node.get_clock().now()
            rgb, depth, box = self.frame(now.nanoseconds * 1e-9)
            stamp = now.to_msg()
            image = numpy_to_image(rgb, "rgb8")
            image.header.stamp, image.header.frame_id = stamp, "cam_optical"
            self.truth[(stamp.sec, stamp.nanosec)] = box
            info = CameraInfo(header=image.header, width=W, height=H, k=[300.0, 0, W / 2, 0, 300.0, H / 2, 0, 0, 1])
            self.pubs["info"].publish(info)
            self.pubs["depth"].publish(numpy_to_image(depth, "16UC1", image.header))
            self.pubs["image"].publish(image)
            self._stop.wait(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.fixture(scope="module")
def system():
    with toy_node(NS, "-p", "watch:=['red circle']", "-p", "max_watch:=9") as client:
        scene = MovingScene(client)
        try:
            out = {"detections": client.listen(Detection2DArray, f"{NS}/anyref/detections"),
                   "labels": client.listen(Image, f"{NS}/anyref/labels"),
                   "target_pose": client.listen(PoseStamped, f"{NS}/anyref/target_pose"), "label_info": []}
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            client.node.create_subscription(LabelInfo, f"{NS}/anyref/label_info", out["label_info"].append, latched)
            client.wait_for(lambda: [d for d in out["detections"] if d.detections], 60, "the first standing answer")
            yield client, scene, out
        finally:
            scene.close()


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = ix * iy
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def box_of(det) -> tuple:
    c, sx, sy = det.bbox.center.position, det.bbox.size_x, det.bbox.size_y
    return (c.x - (sx - 1) / 2, c.y - (sy - 1) / 2, c.x + (sx - 1) / 2, c.y + (sy - 1) / 2)


def stamp(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def of_class(array, name: str) -> list:
    return [d for d in array.detections if d.results[0].hypothesis.class_id == name]


def set_watch(client: Client, texts: list[str]):
    srv = client.service(SetParameters, "set_parameters")
    value = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=texts)
    return client.call(srv, SetParameters.Request(parameters=[Parameter(name="watch", value=value)])).results[0]


def set_string(client: Client, name: str, value: str):
    srv = client.service(SetParameters, "set_parameters")
    v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    return client.call(srv, SetParameters.Request(parameters=[Parameter(name=name, value=v)])).results[0]


def test_follows_a_moving_object_with_one_id(system):
    client, scene, out = system
    start = len(out["detections"])
    time.sleep(5.0)
    answered = [a for a in out["detections"][start:] if of_class(a, "red circle")]
    assert len(answered) >= 10, f"{len(answered)} answered frames in 5 s"
    ious, ids = [], set()
    for a in answered:
        truth = scene.truth.get(stamp(a))
        assert truth is not None, "an answer carries the header of a frame the camera sent"
        (d,) = of_class(a, "red circle")
        ious.append(iou(box_of(d), truth))
        ids.add(d.id)
    assert np.median(ious) >= 0.7, ious
    assert len(ids) == 1 and ids.pop().startswith("w")
    labels = out["labels"][-1]
    assert labels.encoding == "mono16" and (labels.width, labels.height) == (W, H)
    info = client.wait_for(lambda: out["label_info"], 10, "label_info")[-1]
    classes = {c.class_id: c.class_name for c in info.class_map}
    label = next(k for k, v in classes.items() if v == "red circle")
    values = image_to_numpy(labels)
    assert (values == label).sum() > 500


def test_watch_changes_at_runtime(system):
    client, scene, out = system
    assert set_watch(client, ["red circle", "blue square"]).successful
    t = time.monotonic()
    start = len(out["detections"])
    client.wait_for(lambda: [a for a in out["detections"][start:] if of_class(a, "blue square")], 10, "the new query")
    assert time.monotonic() - t < 3.0  # within a second on an idle machine; generous here
    red_id = of_class(next(a for a in out["detections"][start:] if of_class(a, "red circle")), "red circle")[0].id
    assert set_watch(client, ["blue square"]).successful
    time.sleep(1.0)
    start = len(out["detections"])
    time.sleep(1.5)
    later = out["detections"][start:]
    assert later and not any(d.id == red_id for a in later for d in a.detections)
    assert all(of_class(a, "blue square") for a in later)
    assert set_watch(client, ["red circle"]).successful


def test_leaves_the_view_and_comes_back_with_its_id(system):
    client, scene, out = system
    client.wait_for(lambda: of_class(out["detections"][-1], "red circle"), 10, "the circle watched")
    before = of_class(out["detections"][-1], "red circle")[0].id
    scene.away = True
    time.sleep(1.0)
    start = len(out["detections"])
    time.sleep(1.0)
    assert out["detections"][start:] and not any(of_class(a, "red circle") for a in out["detections"][start:])
    scene.away = False
    back = client.wait_for(lambda: [a for a in out["detections"][start:] if of_class(a, "red circle")], 10, "it back")
    assert of_class(back[0], "red circle")[0].id == before


def test_exemplar_standing_query_followed(system):
    client, scene, out = system
    watch = client.service(Watch, "watch")
    crop, mask = render_exemplar(np.random.default_rng(0), "square", "blue", 40)  # as the toy world shows them
    r = client.call(watch, Watch.Request(operation=Watch.Request.ADD, exemplar=numpy_to_image(crop, "rgb8"),
                                         exemplar_mask=mask_to_image(mask), name="follow this"))
    assert r.success, r.message
    assert set_string(client, "follow", "follow this").successful
    start = len(out["detections"])
    got = client.wait_for(lambda: [d for a in out["detections"][start:] for d in a.detections if d.id == r.id],
                          20, "the exemplar's detections")
    x0, y0 = SQUARE
    assert iou(box_of(got[0]), (x0, y0, x0 + 39, y0 + 39)) >= 0.7
    pose = client.wait_for(lambda: out["target_pose"], 20, "~/target_pose")[-1]
    assert pose.header.frame_id == "cam_optical" and abs(pose.pose.position.z - 1.0) < 0.05
    listed = client.call(watch, Watch.Request(operation=Watch.Request.LIST))
    assert r.id in listed.ids and "follow this" in listed.names
    assert client.call(watch, Watch.Request(operation=Watch.Request.REMOVE, id=r.id)).success
    assert set_string(client, "follow", "").successful


def test_one_shot_queries_answered_among_eight_standing(system):
    client, scene, out = system
    texts = ["red circle", "blue square", "green circle", "yellow square", "red square", "blue circle",
             "green triangle", "yellow circle"]
    assert set_watch(client, texts).successful
    seg = client.service(Segment, "segment")
    for _ in range(3):
        r = client.call(seg, Segment.Request(text="blue square"))
        assert r.success and r.result.found, r.message
    assert set_watch(client, ["red circle"]).successful


def test_bad_standing_queries_are_refused_and_the_others_keep_running(system):
    client, scene, out = system
    assert "entry 1 is empty" in set_watch(client, ["red circle", ""]).reason
    assert "entry 1: text is only white space" in set_watch(client, ["red circle", "  "]).reason
    assert "max_text_chars" in set_watch(client, ["red circle", "x" * 600]).reason
    assert "room for" in set_watch(client, [f"red circle {i}" for i in range(12)]).reason
    watch = client.service(Watch, "watch")
    r = client.call(watch, Watch.Request(operation=Watch.Request.ADD))
    assert not r.success and "nothing to watch" in r.message
    big = Image(width=5000, height=5000, encoding="rgb8", step=15000)
    r = client.call(watch, Watch.Request(operation=Watch.Request.ADD, exemplar=big))
    assert not r.success and "max_image_pixels" in r.message
    r = client.call(watch, Watch.Request(operation=Watch.Request.REMOVE, id="w999"))
    assert not r.success and "no standing query" in r.message
    start = len(out["detections"])
    client.wait_for(lambda: [a for a in out["detections"][start:] if of_class(a, "red circle")], 10,
                    "the standing query still answered")
