"""The anyref node's camera-side inputs, driven by the test itself: a query
before any frame, a camera that stopped, depth + camera info giving a 3D position in
the camera frame, compressed images, and lifecycle transitions."""

from __future__ import annotations

import time

import numpy as np
import pytest
from anyref_ros.nodes.conversions import numpy_to_image, rgb_to_compressed
from anyref_ros.srv import Segment
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from node_harness import client_context, output_of, start_node, stop

W, H = 160, 120


@pytest.fixture
def client():
    with client_context("/inputs") as c:
        yield c


@pytest.fixture
def node():
    procs = []

    def start(*args):
        procs.append(start_node("-p", "checkpoint:=tiny", "-p", "warmup:=false", *args, namespace="/inputs"))
        return procs[-1]

    yield start
    for p in procs:
        if p.poll() is None:
            stop(p)


def publisher(client, msg_type, topic):
    pub = client.node.create_publisher(msg_type, topic, qos_profile_sensor_data)
    client.wait_for(lambda: pub.get_subscription_count() > 0, 30, f"the node's subscription to {topic}")
    return pub


def frame(client, stamp_offset_s: float = 0.0, frame_id: str = "cam_optical") -> Image:
    msg = numpy_to_image(np.full((H, W, 3), 120, np.uint8), "rgb8")
    now = client.node.get_clock().now().nanoseconds * 1e-9 + stamp_offset_s
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
    msg.header.frame_id = frame_id
    return msg


def test_no_frame_then_stale_frame_then_fresh_frame(node, client):
    """Freshness is judged by when frames arrive (one rule for queries and
    /diagnostics): a frame whose clock lags 10 s is answered; a camera that
    stopped publishing more than max_frame_age_s ago is refused with why."""
    node("-p", "max_frame_age_s:=2.0")
    seg = client.service(Segment, "segment")
    client.wait_loaded()
    r = client.call(seg, Segment.Request(text="red circle"))
    assert not r.success and "no camera frame has arrived yet on /inputs/image" in r.message
    pub = publisher(client, Image, "/inputs/image")
    # BEST_EFFORT frames are sent again until they are seen: the node's reader can match
    # a moment after our writer.
    r = client.wait_for(lambda: (x := client.call(seg, Segment.Request(text="red circle"))).success and x, 30,
                        "a frame stamped 10 s ago", resend=lambda: pub.publish(frame(client, stamp_offset_s=-10.0)),
                        every=0.0)
    assert r.result.header.frame_id == "cam_optical"
    time.sleep(2.5)  # the camera stops
    r = client.call(seg, Segment.Request(text="red circle"))
    assert not r.success and "no camera frame newer than 2 s on /inputs/image" in r.message, r.message
    r = client.wait_for(lambda: (x := client.call(seg, Segment.Request(text="red circle"))).success and x, 30, "a fresh frame",
                        resend=lambda: pub.publish(frame(client)), every=0.0)
    assert r.result.header.frame_id == "cam_optical"


def test_depth_gives_a_position_in_the_camera_frame(node, client):
    node("-p", "max_frame_age_s:=0.0")
    markers = client.listen(MarkerArray, "/inputs/anyref/markers")
    pub_image = publisher(client, Image, "/inputs/image")
    pub_depth = publisher(client, Image, "/inputs/depth")
    pub_info = publisher(client, CameraInfo, "/inputs/camera_info")
    colour = frame(client)
    depth = numpy_to_image(np.full((H, W), 1500, np.uint16), "16UC1", colour.header)  # 1.5 m plane, mm
    info = CameraInfo(width=W, height=H, k=[100.0, 0, W / 2, 0, 100.0, H / 2, 0, 0, 1])
    info.header.frame_id = "depth_optical"
    seg = client.service(Segment, "segment")

    def answered():
        pub_info.publish(info)
        pub_depth.publish(depth)
        pub_image.publish(colour)
        time.sleep(0.2)
        r = client.call(seg, Segment.Request(text="red circle"))
        return r.success and r.result.has_position and r
    r = client.wait_for(answered, 30, "an answer with a 3D position")
    p = r.result.position
    assert p.header.frame_id == "depth_optical"
    assert abs(p.point.z - 1.5) < 0.02
    assert (p.header.stamp.sec, p.header.stamp.nanosec) == (colour.header.stamp.sec, colour.header.stamp.nanosec)
    client.wait_for(lambda: markers, 10, "RViz markers")
    assert markers[-1].markers[0].header.frame_id == "depth_optical"


def test_compressed_input_and_reliable_qos(node, client):
    node("-p", "use_compressed:=true", "-p", "image_qos:=reliable", "-p", "max_frame_age_s:=0.0")
    pub = client.node.create_publisher(CompressedImage, "/inputs/image/compressed", 10)  # reliable
    client.wait_for(lambda: pub.get_subscription_count() > 0, 30, "the compressed subscription")
    msg = rgb_to_compressed(np.full((H, W, 3), 90, np.uint8), "jpeg")
    msg.header.frame_id = "compressed_cam"
    seg = client.service(Segment, "segment")

    def answered():
        pub.publish(msg)
        r = client.call(seg, Segment.Request(text="blue square"))
        return r.success and r
    r = client.wait_for(answered, 30, "an answer on a compressed frame")
    assert r.result.header.frame_id == "compressed_cam" and r.result.mask.width == W


def test_bad_checkpoint_leaves_node_running_and_inactive(node, client):
    proc = node("-p", "checkpoint:=/nonexistent/folder")
    r = client.wait_loaded()  # answers "loading" until autostart has tried
    assert not r.success and "not active" in r.message and "neither a folder" in r.message, r.message
    assert proc.poll() is None
    stop(proc)
    out = output_of(proc)
    assert "cannot load checkpoint '/nonexistent/folder'" in out and "neither a folder" in out


def test_bad_parameter_value_keeps_the_node_unconfigured_and_running(node, client):
    proc = node("-p", "image_qos:=best_effort")
    r = client.wait_loaded()
    assert not r.success and "not active" in r.message and "image_qos='best_effort'" in r.message, r.message
    stop(proc)
    out = output_of(proc)
    assert "parameter image_qos='best_effort': expected one of ('sensor_data', 'reliable')" in out


@pytest.mark.parametrize("positions, reason", [
    ("[0.0,0.1,0.2,0.3]", "(a multiple of 3 numbers), got 4 numbers"),
    ("[0.0,0.0,0.0,0.0005,0.0,0.0]", "two microphones less than 1 mm apart"),
])
def test_bad_mic_positions_keep_the_node_unconfigured_and_saying_why(node, client, positions, reason):
    proc = node("-p", f"mic_positions:={positions}")
    r = client.wait_loaded()
    assert not r.success and "not active" in r.message and reason in r.message, r.message
    assert proc.poll() is None
    stop(proc)


def test_sigint_exits_cleanly_and_quickly(node, client):
    import signal

    proc = node()
    client.service(Segment, "segment")  # up and serving
    assert stop(proc, signal.SIGINT) < 2.0
    assert proc.returncode == 0
