"""Play a float32 mono .npy file as AudioChunk messages at real-time pace.

Usage: audio_publisher.py TOPIC FILE.npy RATE [CHUNK_MS] [ENCODING]
Waits for one subscriber, prints "start STAMP" (ROS time of the first sample,
seconds) and publishes CHUNK_MS (default 100) chunks, each stamped with the
capture time of its first sample, one every CHUNK_MS of wall time
(SensorDataQoS, like a microphone driver). Prints "done" at the end.
"""

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data

import helper_node
from anyref_ros.msg import AudioChunk
from anyref_ros.nodes.conversions import numpy_to_audio


def main() -> None:
    topic, path, rate = sys.argv[1], sys.argv[2], int(sys.argv[3])
    chunk_ms = float(sys.argv[4]) if len(sys.argv) > 4 else 100.0
    encoding = sys.argv[5] if len(sys.argv) > 5 else "s16le"
    samples = np.load(path).astype(np.float32)
    node = helper_node.create("test_audio_publisher")
    pub = node.create_publisher(AudioChunk, topic, qos_profile_sensor_data)
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    n = int(round(rate * chunk_ms / 1000.0))
    t0 = node.get_clock().now().nanoseconds * 1e-9
    wall0 = time.monotonic()
    print(f"start {t0:.6f}", flush=True)
    for i, a in enumerate(range(0, samples.shape[0], n)):
        stamp = t0 + a / rate
        msg = numpy_to_audio(samples[a:a + n], rate, encoding)
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(round((stamp % 1.0) * 1e9)) % 1_000_000_000
        msg.header.frame_id = "test_mic"
        # A driver publishes a chunk once its last sample has been captured.
        time.sleep(max(0.0, wall0 + (a + n) / rate - time.monotonic()))
        pub.publish(msg)
    print("done", flush=True)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
