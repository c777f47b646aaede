"""Play a float32 mono .npy file as AudioChunk messages at real-time pace.

Usage: audio_publisher.py TOPIC FILE.npy RATE [CHUNK_MS] [ENCODING]
                          [--reliability best_effort|reliable] [--go FILE]
                          [--subscribers N]
Waits for N (default 1) subscribers, prints "start STAMP" (ROS time of the first sample,
seconds) and publishes CHUNK_MS (default 100) chunks, each stamped with the
capture time of its first sample, one every CHUNK_MS of wall time
(SensorDataQoS, BEST_EFFORT, like a microphone driver; ``--reliability
reliable``: RELIABLE, like anyref_mic). With ``--go`` it waits for FILE to
exist (the test decides when) before it waits for the subscriber. Prints
"done" at the end.
"""

import argparse
import os
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

import helper_node
from anyref_ros.msg import AudioChunk
from anyref_ros.nodes.conversions import numpy_to_audio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("topic")
    parser.add_argument("path")
    parser.add_argument("rate", type=int)
    parser.add_argument("chunk_ms", type=float, nargs="?", default=100.0)
    parser.add_argument("encoding", nargs="?", default="s16le")
    parser.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort")
    parser.add_argument("--go")
    parser.add_argument("--subscribers", type=int, default=1)
    opts = parser.parse_args()
    topic, rate, chunk_ms, encoding = opts.topic, opts.rate, opts.chunk_ms, opts.encoding
    samples = np.load(opts.path).astype(np.float32)
    node = helper_node.create("test_audio_publisher")
    qos = qos_profile_sensor_data if opts.reliability == "best_effort" else QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(AudioChunk, topic, qos)
    if opts.go:
        print("waiting for the go file", flush=True)
        while not os.path.exists(opts.go):
            time.sleep(0.05)
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() < opts.subscribers and time.monotonic() < deadline:
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
