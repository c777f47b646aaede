"""Publish N distinct camera frames with BEST_EFFORT (SensorDataQoS) at a rate.

Usage: image_publisher.py WIDTH HEIGHT COUNT RATE_HZ [TOPIC]
Waits for one subscriber, then publishes frames whose header.frame_id is the
frame number, and prints "sent N" when done.
"""

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

import helper_node
from anyref_ros.nodes.conversions import numpy_to_image


def main() -> None:
    width, height, count, rate = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    topic = sys.argv[5] if len(sys.argv) > 5 else "image"
    node = helper_node.create("test_image_publisher")
    pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let the reader's side of the match settle
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    for i in range(count):
        frame[0, 0, 0] = i % 256
        msg = numpy_to_image(frame, "rgb8")
        msg.header.frame_id = str(i)
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        time.sleep(1.0 / rate)
    print(f"sent {count}", flush=True)
    time.sleep(1.0)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
