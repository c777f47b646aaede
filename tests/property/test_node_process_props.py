"""Hypothesis-generated bad input sent to a REAL anyref node process over DDS.

The node is the console entry point ``anyref_node`` in its own process
(``checkpoint:=tiny``, no warm-up, CPU). Each example is one thing a
careless or hostile client could do: a ``~/segment`` call with garbage or
edge-case text / images / exemplars / audio, a ``~/describe_region`` call
with boxes outside, inverted or huge, a ``~/refer`` goal, a
``~/segment_sound`` call, a string on ``query``, or a malformed message on the
camera, depth, camera_info or audio topics.

Properties: every call gets a response (success, or failure with a message
that says why), a successful answer's mask has the size of the frame it was
computed on, and after the whole run the process is alive, its resident
memory grew by less than a margin, and it still answers a normal query.

Profiles: see conftest.py (``ANYREF_HYPOTHESIS_PROFILE=long`` for more examples).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from hypothesis import given
from hypothesis import strategies as st
from nodeinputs import (CAMERA, any_describe_requests, any_segment_requests, audio_messages, camera_frame,
                        camera_infos, check_answer, depth_messages, depth_with_info, plausible_segment_requests,
                        query_strings, segment_requests)
from propsupport import examples, raw_images
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger

from anyref_ros.action import Refer
from anyref_ros.msg import AudioChunk
from anyref_ros.srv import DescribeRegion, Segment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ros"))
from node_harness import Client, start_node, stop  # noqa: E402

NAMESPACE = "/fuzz"
RSS_MARGIN_MB = 300.0
CALL_TIMEOUT_S = 120.0

actions = st.one_of(
    st.tuples(st.just("position"), depth_with_info()),
    st.tuples(st.just("segment"), segment_requests()),
    st.tuples(st.just("segment"), plausible_segment_requests()),
    st.tuples(st.just("describe"), any_describe_requests),
    st.tuples(st.just("refer"), any_segment_requests),
    st.tuples(st.just("segment_sound"), st.just(Trigger.Request())),
    st.tuples(st.just("query"), query_strings),
    st.tuples(st.just("image"), raw_images(max_bytes=4096)),
    st.tuples(st.just("depth"), depth_messages),
    st.tuples(st.just("camera_info"), camera_infos()),
    st.tuples(st.just("audio"), audio_messages),
)


# -------------------------------------------------------------------- the node
def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmRSS:"))


class Fuzzed:
    def __init__(self) -> None:
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.proc = start_node("-p", "checkpoint:=tiny", "-p", "warmup:=false", "-p", "device:=cpu",
                               "-p", "max_frame_age_s:=0.0", "-p", "query_timeout_s:=60.0", namespace=NAMESPACE)
        self.client = Client(self.ctx, namespace=NAMESPACE)
        node = self.client.node
        self.pubs = {name: node.create_publisher(t, f"{NAMESPACE}/{name}", qos_profile_sensor_data)
                     for name, t in (("image", Image), ("depth", Image), ("camera_info", CameraInfo),
                                     ("audio", AudioChunk))}
        self.query = node.create_publisher(String, f"{NAMESPACE}/query", 10)
        self.client.wait_for(lambda: all(p.get_subscription_count() for p in self.pubs.values()), 60, "subscriptions")
        self.client.wait_loaded(180)
        self.segment = self.client.service(Segment, "segment")
        self.describe = self.client.service(DescribeRegion, "describe_region")
        self.segment_sound = self.client.service(Trigger, "segment_sound")
        self.refer = self.client.action(Refer, "refer")
        self.frame_sizes = {CAMERA}
        self.show_camera()
        self.rss_start = rss_mb(self.proc.pid)

    def show_camera(self, stamp=None) -> None:
        """A valid camera frame, so that "latest frame" queries have one."""
        msg = camera_frame(stamp or self.client.node.get_clock().now().to_msg())
        for _ in range(3):
            self.pubs["image"].publish(msg)
            time.sleep(0.02)

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            stop(self.proc)
        rclpy.try_shutdown(context=self.ctx)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.proc.output[-n:])  # (start_node collects the node's output)


@pytest.fixture(scope="module")
def fuzzed():
    f = Fuzzed()
    yield f
    f.close()


def _image_size(img: Image):
    """(W, H) if ``img`` is a decodable scene image, else None."""
    from anyref_ros.nodes import conversions as conv

    try:
        conv.image_to_rgb(img)
    except conv.ConversionError:
        return None
    return img.width, img.height


# ------------------------------------------------------------------ the tests
def answered(f: Fuzzed, response, scene, what: str) -> None:
    """``check_answer`` against the camera frames ``f`` sent, with the node's log tail when unanswered."""
    check_answer(response, scene, f.frame_sizes, what, f" within {CALL_TIMEOUT_S:g} s\n{f.tail()}")


@examples(200)
@given(action=actions)
def test_node_process_survives_generated_input(fuzzed, action):
    f, (kind, payload) = fuzzed, action
    assert f.proc.poll() is None, f"the node exited (code {f.proc.returncode})\n{f.tail()}"
    if kind == "segment":
        r = f.client.call(f.segment, payload, CALL_TIMEOUT_S)
        answered(f, r, payload.image, "segment")
    elif kind == "describe":
        r = f.client.call(f.describe, payload, CALL_TIMEOUT_S)
        answered(f, r, payload.image, "describe_region")
    elif kind == "segment_sound":
        r = f.client.call(f.segment_sound, payload, CALL_TIMEOUT_S)
        assert r is not None and (r.success or r.message.strip())
    elif kind == "refer":
        goal = Refer.Goal(text=payload.text, image=payload.image, exemplar=payload.exemplar,
                          exemplar_mask=payload.exemplar_mask, audio=payload.audio)
        handle = f.client.send_goal(f.refer, goal, timeout=CALL_TIMEOUT_S)
        assert handle is not None
        if handle.accepted:
            result = f.client.goal_result(handle, CALL_TIMEOUT_S)
            assert result is not None
            answered(f, result.result, payload.image, "refer")
    elif kind == "position":
        depth, info = payload
        now = f.client.node.get_clock().now().to_msg()
        depth.header.stamp = info.header.stamp = now
        f.pubs["camera_info"].publish(info)
        f.pubs["depth"].publish(depth)
        f.show_camera(now)
        time.sleep(0.05)
        r = f.client.call(f.segment, Segment.Request(text="red square"), CALL_TIMEOUT_S)
        answered(f, r, None, "segment with depth")
        if r.success and r.result.has_position:
            p = r.result.position.point
            assert all(np.isfinite([p.x, p.y, p.z])), f"non-finite 3D position {p}"
    elif kind == "query":
        f.query.publish(payload)
    else:
        f.pubs[kind].publish(payload)
        if kind == "image":
            size = _image_size(payload)
            if size is not None:
                f.frame_sizes.add(size)
            f.show_camera()  # the garbage frame is replaced; answers use a good one again


def test_node_process_still_answers_and_memory_bounded(fuzzed):
    f = fuzzed
    assert f.proc.poll() is None, f"the node exited (code {f.proc.returncode})\n{f.tail()}"
    f.show_camera()
    time.sleep(0.2)
    r = f.client.call(f.segment, Segment.Request(text="red square"), CALL_TIMEOUT_S)
    assert r is not None and r.success, (r and r.message, f.tail())
    assert (r.result.mask.width, r.result.mask.height) == CAMERA
    grown = rss_mb(f.proc.pid) - f.rss_start
    print(f"\n[fuzz] node RSS {f.rss_start:.0f} MB -> {f.rss_start + grown:.0f} MB")
    assert grown < RSS_MARGIN_MB, f"node RSS grew {grown:.0f} MB during the generated input"
