"""Real processes over Fast DDS with the shipped profile: big BEST_EFFORT
images arrive, and this package's generated service types work across
processes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from anyref_ros.nodes.conversions import image_to_mask, image_to_numpy, numpy_to_image
from anyref_ros.srv import Segment


@pytest.mark.timeout(90)
def test_720p_best_effort_frames_reach_another_process(spawn, ros_context):
    """A publisher process sends 50 1280x720 rgb8 frames at 10 Hz with
    SensorDataQoS; this process must receive at least 90 % of them."""
    count = 50
    node = rclpy.create_node("test_image_receiver", context=ros_context)
    received: set[int] = set()
    shapes: set[tuple[int, ...]] = set()

    def on_image(msg: Image) -> None:
        received.add(int(msg.header.frame_id))
        shapes.add(image_to_numpy(msg).shape)

    node.create_subscription(Image, "big_image", on_image, qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    pub = spawn("image_publisher", "1280", "720", str(count), "10", "big_image")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and pub.poll() is None and len(received) < count:
        executor.spin_once(timeout_sec=0.1)
    end = time.monotonic() + 1.0
    while time.monotonic() < end and len(received) < count:
        executor.spin_once(timeout_sec=0.1)
    executor.shutdown()
    node.destroy_node()
    output = pub.stdout.read() if pub.poll() is not None else ""
    assert len(received) >= 0.9 * count, f"received {len(received)}/{count}; publisher said: {output!r}"
    assert shapes == {(720, 1280, 3)}


@pytest.mark.timeout(60)
def test_segment_service_answers_across_processes(spawn, ros_context):
    server = spawn("segment_server")
    node = rclpy.create_node("test_segment_client", context=ros_context)
    client = node.create_client(Segment, "segment")
    assert client.wait_for_service(timeout_sec=30), "segment service did not appear"
    request = Segment.Request()
    request.text = "the red mug on the left"
    rgb = np.random.default_rng(1).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    request.image = numpy_to_image(rgb, "rgb8")
    request.image.header.frame_id = "camera_optical"
    request.image.header.stamp.sec = 42
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    time.sleep(0.5)  # the server's response writer matches this new caller a moment after discovery
    for _ in range(3):  # a response sent before that match is lost: ask again (the call is idempotent)
        future = client.call_async(request)
        executor.spin_until_future_complete(future, timeout_sec=10)
        if future.done():
            break
    executor.shutdown()
    response = future.result()
    assert response is not None, "no response"
    assert response.success, response.message
    assert response.result.query == request.text
    assert response.result.header.frame_id == "camera_optical"
    assert response.result.header.stamp.sec == 42
    mask = image_to_mask(response.result.mask)
    assert mask.shape == (48, 64) and mask.all()
    node.destroy_node()
    assert server.poll() is None, "server died"
