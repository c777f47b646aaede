"""The anyref node's callbacks driven IN-PROCESS with hypothesis-generated messages.

The real ``AnyRefNode`` (``checkpoint:=tiny``, no warm-up, CPU) is built on a
context of its own, configured and activated (the tiny model loads in its
loader thread); no executor spins: each example calls a callback directly,
as the executor would, with an Image / CompressedImage / depth / CameraInfo /
AudioChunk message, a Segment / DescribeRegion / Trigger request, a Refer
goal (goal callback, then the execute callback with a real rclpy
ServerGoalHandle) or a query string.

Properties:

* nothing raises out of a callback, and no exception is swallowed by the
  node's callback guard either (``callback_errors`` stays 0: bad input must
  be refused by a check with a message, not by an accident);
* every service / goal gets a response: success, or failure with a message;
* a successful answer's mask is mono8 and has the size of the frame it was
  computed on (the request's image, or the latest camera frame);
* state stays bounded: frame history, depth buffer, audio ring, pending
  goals, waiting-caller slots; and the process's resident memory after the
  whole module stays within a margin of what it was once the model was
  loaded.

Profiles: see conftest.py (``ANYREF_HYPOTHESIS_PROFILE=long`` for more examples).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import rclpy
from hypothesis import event, given
from hypothesis import strategies as st
from nodeinputs import (CAMERA, EMPTY, any_describe_requests, any_segment_requests, audio_messages, camera_frame,
                        camera_infos, camera_messages, check_answer, depth_messages, depth_with_info,
                        frame_names, plausible_audio, query_strings, tf_messages)
from propsupport import examples
from rclpy.action import GoalResponse
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage
from std_srvs.srv import Trigger

from anyref_ros.action import Refer
from anyref_ros.nodes import conversions as conv
from anyref_ros.srv import DescribeRegion, Segment

RSS_MARGIN_MB = 400.0
LOAD_TIMEOUT_S = 300.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmRSS:"))


@pytest.fixture(scope="module")
def node():
    from anyref_ros.nodes.anyref.node import AnyRefNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    n = AnyRefNode(context=ctx, parameter_overrides=[
        Parameter("checkpoint", value="tiny"), Parameter("warmup", value=False), Parameter("device", value="cpu"),
        Parameter("max_frame_age_s", value=0.0), Parameter("query_timeout_s", value=60.0)])
    try:
        n.trigger_configure()
        n.trigger_activate()
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while n.model.state == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert n.model.state == "ready", f"the tiny model did not load: {n.model.state} {n.model.failure}"
        n.intake.on_image(camera_frame())
        n.rss_ready = rss_mb()
        n.goal_handles = []
        yield n
    finally:
        n.release()
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)


# ----------------------------------------------------------------- checks
def scene_size(msg):
    """(W, H) a query on ``msg`` as its scene must answer with, or None if it cannot be one."""
    try:
        if isinstance(msg, CompressedImage):
            return conv.compressed_size(msg)
        conv.image_to_rgb(msg)
    except (conv.ConversionError, ValueError):
        return None
    return msg.width, msg.height


def check_bounded(n) -> None:
    from anyref_ros.nodes.anyref import intake as intake_mod
    from anyref_ros.nodes.anyref import refer as refer_mod

    stats = n.stats.snapshot()
    assert stats.get("callback_errors", 0) == 0, "a callback raised and the guard caught it: see the log above"
    assert len(n.intake._history) <= intake_mod.FRAME_HISTORY
    assert len(n.intake.depth) <= intake_mod.DEPTH_FRAMES
    ring = n.hearing.audio
    assert ring.duration <= ring.max_seconds + 0.5 and ring.capacity <= ring.max_samples
    assert len(n.refer._goals) <= refer_mod.MAX_PENDING_GOALS
    assert n.queries.slots.used == 0, "a waiting-caller slot leaked"


# ------------------------------------------------------------------ sensors
@examples(150)
@given(msg=camera_messages, ask=st.booleans())
def test_camera_callback(node, msg, ask):
    """Any frame: stored; a query on it answers on its size or says why it cannot."""
    node.intake.on_image(msg)
    if ask:
        r = node.queries.on_segment(Segment.Request(text="red square"), Segment.Response())
        check_answer(r, None, {scene_size(msg)}, "segment on the frame")
    node.intake.on_image(camera_frame())
    check_bounded(node)


@examples(80)
@given(msg=depth_messages)
def test_depth_callback(node, msg):
    node.intake.on_depth(msg)
    check_bounded(node)


@examples(25)
@given(pair=depth_with_info())
def test_depth_and_camera_info_then_query(node, pair):
    depth, info = pair
    stamp = node.get_clock().now().to_msg()
    depth.header.stamp = info.header.stamp = stamp
    node.intake.on_camera_info(info)
    node.intake.on_depth(depth)
    node.intake.on_image(camera_frame(stamp))
    r = node.queries.on_segment(Segment.Request(text="red square"), Segment.Response())
    check_answer(r, None, {CAMERA}, "segment with depth")
    if r.success and r.result.has_position:
        p = r.result.position.point
        assert np.isfinite([p.x, p.y, p.z]).all(), f"non-finite 3D position {p}"
    check_bounded(node)


@examples(80)
@given(msgs=st.lists(st.tuples(tf_messages(), st.booleans()), min_size=1, max_size=4), target=frame_names,
       source=frame_names, t=st.one_of(st.none(), st.floats(-1e12, 1e12), st.floats(allow_nan=True)))
def test_tf_callbacks_then_lookup(node, msgs, target, source, t):
    """Any /tf and /tf_static input: stored or refused (counted), never raised; a lookup
    is a finite matrix or TransformUnavailable with a reason; the frame graph stays bounded."""
    from anyref_ros.spatial.transforms import MAX_EDGES, TransformUnavailable

    for msg, static in msgs:
        (node.transforms.on_tf_static if static else node.transforms.on_tf)(msg)
    try:
        matrix = node.transforms.lookup(target, source, t, 0.0)
    except TransformUnavailable as exc:
        assert str(exc)
    else:
        assert np.isfinite(matrix).all()
    assert len(node.transforms.buffer._edges) <= MAX_EDGES
    check_bounded(node)


@examples(60)
@given(info=camera_infos())
def test_camera_info_callback(node, info):
    node.intake.on_camera_info(info)
    check_bounded(node)


@examples(150)
@given(chunks=st.lists(audio_messages, min_size=1, max_size=4))
def test_audio_callback(node, chunks):
    for c in chunks:
        node.hearing.on_audio(c)
    check_bounded(node)


@examples(8)
@given(chunks=st.lists(plausible_audio(), min_size=1, max_size=30), garbage=st.lists(audio_messages, max_size=3))
def test_audio_stream_then_segment_sound(node, chunks, garbage):
    """A stream of well-formed chunks (rates, channel counts, gaps, NaN now and then)
    with garbage among them, then ~/segment_sound."""
    for c in chunks + garbage:
        node.hearing.on_audio(c)
    r = node.queries.on_segment_sound(Trigger.Request(), Trigger.Response())
    assert r.success or r.message.strip()
    event("segment_sound: " + ("ok" if r.success else " ".join(r.message.split()[:3])))
    check_bounded(node)


# ------------------------------------------------------------------ queries
@examples(100)
@given(req=any_segment_requests)
def test_segment_service(node, req):
    r = node.queries.on_segment(req, Segment.Response())
    check_answer(r, req.image, {CAMERA}, "segment")
    check_bounded(node)


@examples(80)
@given(req=any_describe_requests)
def test_describe_service(node, req):
    r = node.queries.on_describe(req, DescribeRegion.Response())
    check_answer(r, req.image, {CAMERA}, "describe_region")
    check_bounded(node)


@examples(50)
@given(msg=query_strings)
def test_query_topic(node, msg):
    before = node.stats.snapshot()
    node.queries.on_query(msg)
    after = node.stats.snapshot()
    counted = sum(after.get(k, 0) - before.get(k, 0) for k in ("queries_ok", "queries_failed", "queries_refused"))
    assert counted == 1, f"a query string must end as exactly one ok/failed/refused, got {after} from {before}"
    check_bounded(node)


def _goal_handle(n, goal):
    """A real rclpy ServerGoalHandle on the node's action server, moved to EXECUTING
    (what the action server does before it calls the execute callback)."""
    from action_msgs.msg import GoalInfo
    from rclpy.action.server import ServerGoalHandle
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
    from unique_identifier_msgs.msg import UUID

    handle = ServerGoalHandle(n.refer.server, GoalInfo(goal_id=UUID(uuid=list(os.urandom(16)))), goal)
    handle._update_state(_rclpy.GoalEvent.EXECUTE)
    return handle


@examples(60)
@given(req=any_segment_requests)
def test_refer_goal_and_execute(node, req):
    goal = Refer.Goal(text=req.text, image=req.image, exemplar=req.exemplar, exemplar_mask=req.exemplar_mask,
                      audio=req.audio)
    answer = node.refer.on_goal(goal)
    assert answer in (GoalResponse.ACCEPT, GoalResponse.REJECT)
    if answer == GoalResponse.ACCEPT:
        handle = _goal_handle(node, goal)
        # Kept, not destroyed: the action server's C side lists the goal until it
        # expires (as after a real goal); destroying the handle first would leave it
        # a dangling entry there.
        node.goal_handles.append(handle)
        result = node.refer.execute_refer(handle)
        check_answer(result, req.image, {CAMERA}, "refer")
    assert not node.refer._goals, "an executed goal left its bookkeeping behind"
    check_bounded(node)


# ------------------------------------------------------------------- the end
def test_still_answers_and_memory_bounded(node):
    node.intake.on_image(camera_frame())
    r = node.queries.on_segment(Segment.Request(text="red square"), Segment.Response())
    assert r.success, r.message
    assert (r.result.mask.width, r.result.mask.height) == CAMERA
    node.diagnostics.publish()
    check_bounded(node)
    grown = rss_mb() - node.rss_ready
    print(f"\n[callbacks] process RSS {node.rss_ready:.0f} MB once loaded -> {rss_mb():.0f} MB; "
          f"counters {node.stats.snapshot()}")
    assert grown < RSS_MARGIN_MB, f"RSS grew {grown:.0f} MB over the generated input"
    assert EMPTY.width == 0  # the shared empty image was not modified by any callback
