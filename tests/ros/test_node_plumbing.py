"""The anyref node through its console entry point (--ros-args), with a camera
in another process, on the tiny random preset: every path answers with the
frame's header, bad input is refused with a clear message and the node keeps
answering, and SIGTERM exits quickly. (Answer quality is tested with the
trained toy model elsewhere; here the masks of a random model are only
checked for size.)"""

from __future__ import annotations

import signal

import numpy as np
import pytest
from anyref_ros.nodes.conversions import image_to_mask, numpy_to_audio, numpy_to_image
from anyref_ros.msg import AudioChunk, Referral
from anyref_ros.action import Refer
from anyref_ros.srv import DescribeRegion, Segment
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image
from std_msgs.msg import String

from node_harness import Client, output_of, start_node, stop, wait_future

W, H = 640, 480


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    """Node + 10 Hz BEST_EFFORT camera (640x480) + a client, for the whole module.
    The node's queries are slowed to >= 0.3 s by a test fault plan (tests/faults.py)."""
    import rclpy

    from testsupport import spawn_helper

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = start_node("-p", "checkpoint:=tiny", "-p", "warmup:=false", "-p", "max_queue:=4",
                      "-p", "max_image_pixels:=1000000", "-p", "max_text_chars:=40", "-r", "image:=camera/image",
                      # every query takes >= 0.3 s (test fault plan), so queues, cancels and
                      # concurrency happen whatever the speed of the tiny model on this machine
                      faults="slow:0.3")
    camera = spawn_helper("image_publisher", str(W), str(H), "100000", "10", "/robot/camera/image")
    client = Client(ctx)
    try:  # (a failed set-up stops the processes too: the camera would run for hours)
        client.wait_loaded()
        yield node, camera, client
    finally:
        client.close()
        for proc in (camera, node):
            if proc.poll() is None:
                stop(proc)
        rclpy.try_shutdown(context=ctx)


def wait_ready(client) -> None:
    """Until the node answers on camera frames (it loads, the camera is discovered)."""
    seg = client.service(Segment, "segment")
    client.wait_for(lambda: client.call(seg, segment_request()).success, 60, "a successful answer on a camera frame")


def segment_request(text="red circle", **fields) -> Segment.Request:
    req = Segment.Request()
    req.text = text
    for k, v in fields.items():
        setattr(req, k, v)
    return req


def test_segment_text_on_latest_frame(system):
    node, camera, client = system
    results = client.listen(Referral, "/robot/anyref/results")
    masks = client.listen(Image, "/robot/anyref/mask")
    seg = client.service(Segment, "segment")
    response = client.wait_for(lambda: (r := client.call(seg, segment_request())).success and r, 60,
                               "a successful segment answer (camera frames arriving)")
    res = response.result
    assert response.message == "ok"
    assert image_to_mask(res.mask).shape == (H, W)
    assert res.header.frame_id.isdigit(), "the answer carries the camera frame's header"
    assert res.query == "red circle" and res.reference_type == "text"
    assert res.latency_ms > 0
    client.wait_for(lambda: results and masks, 10, "~/results and ~/mask")
    assert masks[-1].header.frame_id == results[-1].header.frame_id


def test_segment_exemplar_and_audio_and_describe(system):
    node, camera, client = system
    seg = client.service(Segment, "segment")
    rng = np.random.default_rng(0)
    exemplar = numpy_to_image(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), "rgb8")
    mask = numpy_to_image(np.full((40, 50), 255, np.uint8), "mono8")
    r = client.call(seg, segment_request("", exemplar=exemplar, exemplar_mask=mask))
    assert r.success, r.message
    assert r.result.reference_type == "exemplar" and image_to_mask(r.result.mask).shape == (H, W)
    t = np.arange(16000 * 2) / 16000
    audio = numpy_to_audio((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, "s16le")
    r = client.call(seg, segment_request("blue square", audio=audio))
    assert r.success, r.message
    assert r.result.reference_type == "combined"
    desc = client.service(DescribeRegion, "describe_region")
    req = DescribeRegion.Request(x_min=10, y_min=20, x_max=200, y_max=300)
    r = client.call(desc, req)
    assert r.success, r.message
    assert r.result.reference_type == "region" and image_to_mask(r.result.mask).shape == (H, W)


def test_explicit_image_keeps_its_header(system):
    node, camera, client = system
    seg = client.service(Segment, "segment")
    image = numpy_to_image(np.zeros((90, 120, 3), np.uint8), "bgr8")
    image.header.frame_id, image.header.stamp.sec = "hand_camera", 7
    r = client.call(seg, segment_request(image=image))
    assert r.success, r.message
    assert (r.result.header.frame_id, r.result.header.stamp.sec) == ("hand_camera", 7)
    assert image_to_mask(r.result.mask).shape == (90, 120)


def bad_requests():
    ok_image = numpy_to_image(np.zeros((8, 8, 3), np.uint8), "rgb8")
    yuv = numpy_to_image(np.zeros((8, 8, 3), np.uint8), "rgb8")
    yuv.encoding = "yuv422"
    short = numpy_to_image(np.zeros((8, 8, 3), np.uint8), "rgb8")
    short.data = bytes(short.data)[:100]
    zero_side = Image(height=0, width=8, encoding="rgb8", step=24)
    huge = Image(height=1001, width=1000, encoding="mono8", step=1000, data=b"\0" * 1001000)
    bad_audio = AudioChunk(sample_rate=16000, channels=1, encoding="mp3", data=b"\0" * 64)
    return [
        (segment_request(image=yuv), "unsupported image encoding 'yuv422'"),
        (segment_request(image=short), "height\\*step"),
        (segment_request(image=zero_side), "a side is zero"),
        (segment_request(image=huge), "above max_image_pixels=1000000"),
        (segment_request(""), "no reference given"),
        (segment_request("   "), "only white space"),
        (segment_request("x" * 41), "above max_text_chars=40"),
        (segment_request(image=ok_image, audio=bad_audio), "unsupported audio encoding 'mp3'"),
    ]


@pytest.mark.parametrize("index", range(8))
def test_bad_input_is_refused_and_the_node_answers_next(system, index):
    node, camera, client = system
    request, match = bad_requests()[index]
    seg = client.service(Segment, "segment")
    r = client.call(seg, request)
    assert not r.success
    import re

    assert re.search(match, r.message), r.message
    good = client.call(seg, segment_request(image=numpy_to_image(np.zeros((16, 16, 3), np.uint8), "rgb8")))
    assert good.success, good.message


def test_box_outside_the_image_is_refused(system):
    node, camera, client = system
    desc = client.service(DescribeRegion, "describe_region")
    r = client.call(desc, DescribeRegion.Request(x_min=10, y_min=10, x_max=W, y_max=20))
    assert not r.success and "not inside the 640x480 image" in r.message


def test_query_topic_publishes_results(system):
    node, camera, client = system
    results = client.listen(Referral, "/robot/anyref/results")
    pub = client.node.create_publisher(String, "/robot/query", 10)
    client.wait_for(lambda: pub.get_subscription_count() > 0, 30, "the node's query subscription")
    pub.publish(String(data="green triangle"))
    got = client.wait_for(lambda: [m for m in results if m.query == "green triangle"], 60, "a result for the query topic")
    assert got[0].header.frame_id.isdigit()


def test_action_feedback_result_and_cancel(system):
    node, camera, client = system
    wait_ready(client)
    action = client.action(Refer, "refer")
    feedback = []
    goal = Refer.Goal(text="yellow square")
    handle = client.send_goal(action, goal, feedback_callback=lambda m: feedback.append(m.feedback.stage))
    assert handle.accepted
    result = client.goal_result(handle).result
    assert result.success, result.message
    assert image_to_mask(result.result.mask).shape == (H, W)
    assert "generating" in feedback

    # An exemplar is answered by generating text: feedback carries the text so far,
    # then the mask stage (every stage sent is one of the action's declared stages).
    fbs = []
    goal = Refer.Goal(exemplar=numpy_to_image(np.full((40, 40, 3), (200, 30, 30), np.uint8), "rgb8"))
    handle = client.send_goal(action, goal, feedback_callback=lambda m: fbs.append(m.feedback))
    assert handle.accepted
    result = client.goal_result(handle).result
    assert result.success, result.message
    stages = [f.stage for f in fbs]
    declared = {getattr(Refer.Feedback, k) for k in dir(Refer.Feedback) if k.startswith("STAGE_")}
    assert set(stages) <= declared and "decoding_mask" in stages, stages
    texts = [f.partial_text for f in fbs if f.stage == "generating" and f.partial_text]
    if result.result.description:  # the tiny random model generated words
        assert texts and all(t in result.result.description for t in texts), \
            (texts, result.result.description)

    # Cancel: the first goals occupy the worker (>= 0.3 s each, one after another even when
    # batched), the last waits >= 0.9 s, time enough for the cancel's round trip, and is cancelled.
    goals = [client.send_goal(action, Refer.Goal(text=f"red circle {i}")) for i in range(4)]
    cancel = client.cancel(goals[-1])
    assert len(cancel.goals_canceling) == 1
    outcome = client.goal_result(goals[-1])
    from action_msgs.msg import GoalStatus

    assert outcome.status == GoalStatus.STATUS_CANCELED
    assert not outcome.result.success and outcome.result.message == "cancelled"
    for g in goals[:-1]:
        assert client.goal_result(g).result.success


def test_all_paths_at_once_and_a_burst_of_goals(system):
    """Service, region service, action and query topic used concurrently all
    answer; a burst of goals beyond max_queue is partly rejected at once and
    every accepted goal still succeeds."""
    import threading

    node, camera, client = system
    wait_ready(client)
    seg = client.service(Segment, "segment")
    desc = client.service(DescribeRegion, "describe_region")
    action = client.action(Refer, "refer")
    results = client.listen(Referral, "/robot/anyref/results")
    pub = client.node.create_publisher(String, "/robot/query", 10)
    client.wait_for(lambda: pub.get_subscription_count() > 0, 30, "the query subscription")
    answers = {}

    def call(name, fn):
        answers[name] = fn()

    threads = [
        threading.Thread(target=call, args=("segment", lambda: client.call(seg, segment_request("red square")))),
        threading.Thread(target=call, args=("describe", lambda: client.call(desc, DescribeRegion.Request(x_min=0, y_min=0, x_max=99, y_max=99)))),
        threading.Thread(target=call, args=("action", lambda: client.goal_result(client.send_goal(action, Refer.Goal(text="blue circle"))).result)),
    ]
    for t in threads:
        t.start()
    pub.publish(String(data="concurrent query"))
    for t in threads:
        t.join(60)
    assert all(answers[k].success for k in ("segment", "describe", "action")), {k: v.message for k, v in answers.items()}
    client.wait_for(lambda: [m for m in results if m.query == "concurrent query"], 60, "the topic query's answer")

    async def burst():
        # 10: rclpy's default action QoS keeps the last 10 requests and responses
        futures = [action.send_goal_async(Refer.Goal(text=f"goal {i}")) for i in range(10)]
        return [await f for f in futures]

    handles = wait_future(client.executor.create_task(burst), 60)
    accepted = [h for h in handles if h.accepted]
    assert 0 < len(accepted) < len(handles), "a burst of 10 goals with max_queue=4 should be partly rejected"
    for h in accepted:
        assert client.goal_result(h).result.success


def test_diagnostics_report_frames_and_latency(system):
    node, camera, client = system
    diags = client.listen(DiagnosticArray, "/diagnostics")
    got = client.wait_for(lambda: [d for d in diags if d.status and d.status[0].name.startswith("anyref")], 10, "diagnostics")
    values = {kv.key: kv.value for kv in got[-1].status[0].values}
    assert int(values["frames_received"]) > 0
    assert "queue_depth" in values and "device_memory_mb" in values
    assert float(values["camera_callback_ms.p99"]) >= float(values["camera_callback_ms.p50"]) >= 0.0
    assert "camera_delay_ms.p50" in values and values["state"] == "ready"
    # the engine's batches and caches (the warm-up query already ran through them)
    assert int(values["batches"]) >= 1 and int(values["max_batch_seen"]) >= 1
    assert float(values["mean_batch"]) >= 1.0 and int(values["frames_encoded"]) >= 1
    assert int(values["prefix_built"]) >= 1 and int(values["prefix_used"]) >= 1
    assert int(values["cache_hits"]) >= 0 and int(values["prefix_missed"]) >= 0


def test_sigterm_exits_quickly(system):
    node, camera, client = system
    assert node.poll() is None, output_of(node)
    assert stop(node, signal.SIGTERM) < 2.0
    assert node.returncode == 0
