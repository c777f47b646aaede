"""The node on the embedded toy model, as a user would run it: the console
entry point with --ros-args, a camera process playing 640x480 toy scenes
(BEST_EFFORT, with depth and camera info), and every query path answering
correctly (IoU >= 0.6 against the ground truth) with the frame's header; depth
gives the 3D position within 2 cm; an absent object is answered "not found" and
min_score reports a weak mask as not found."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import rclpy
from anyref_ros.action import Refer
from diagnostic_msgs.msg import DiagnosticArray
from anyref_ros.nodes.conversions import image_to_mask, numpy_to_audio, numpy_to_image
from anyref_ros.data.toy import ToyWorld
from anyref_ros.msg import Referral
from anyref_ros.srv import DescribeRegion, Segment
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from sensor_msgs.msg import Image
from std_msgs.msg import String

from node_harness import Client, scene_switcher, start_node, stop
from testsupport import REPO, spawn_helper, stop_process

SEED = 11  # scenes for this test: not a training seed
SIZE = (640, 480)
FX = FY = 500.0  # as tests/helpers/toy_camera.py

pytestmark = pytest.mark.skipif(not (REPO / "model" / "toy" / "config.json").is_file(),
                                reason="model/toy (the trained toy checkpoint) is not in this checkout")


@pytest.fixture(scope="module")
def toy_system():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = start_node("-p", "checkpoint:=model/toy", "-p", "device:=cpu", "-r", "image:=image", namespace="/toy")
    camera = spawn_helper("toy_camera", "/toy", str(SEED))
    client = Client(ctx, namespace="/toy")
    switch = scene_switcher(client, "/toy")
    world = ToyWorld(SEED, size=SIZE)

    seg = None

    def show(task: str, index: int):
        """Until the node's latest frame shows the scene (a frame stamped after the camera's
        acknowledgement: BEST_EFFORT frames can be late or lost when the machine stalls)."""
        shown_at = switch(f"{task} {index}")
        if seg is not None:
            client.wait_for(lambda: (r := client.call(seg, Segment.Request(text="frame check"))).success and
                            r.result.header.stamp.sec + r.result.header.stamp.nanosec * 1e-9 >= shown_at,
                            30, f"the node to see scene {task} {index}")
        return world.sample(index, task)

    try:  # (a failed set-up stops the processes too)
        show("text", 0)  # until the node has loaded the model and receives the camera
        seg = client.service(Segment, "segment", timeout=120)
        client.wait_for(lambda: client.call(seg, Segment.Request(text="red circle")).success, 120, "the node answering")
        yield client, show
    finally:
        client.close()
        stop_process(camera)
        stop(node)
        rclpy.try_shutdown(context=ctx)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum()))


def check(result: Referral, sample, min_iou: float = 0.6) -> float:
    """The answer is on the camera's frame, of its size; returns its IoU (asserted >= min_iou unless None)."""
    assert result.header.frame_id == "toy_camera_optical"
    mask = image_to_mask(result.mask)
    assert mask.shape == (SIZE[1], SIZE[0])
    score = iou(mask, sample.mask)
    if min_iou is not None:
        assert score >= min_iou, f"IoU {score:.2f} for {sample.task} {sample.query or sample.description!r}"
    return score


def mean_iou_ok(scores: list[float]) -> None:
    """Text queries are the toy model's weakest task (held-out cIoU 0.86, some
    scenes below 0.6), so several scenes are asked and their mean is checked."""
    assert np.mean(scores) >= 0.6, f"mean IoU {np.mean(scores):.2f} over {len(scores)} text queries: {scores}"


def segment(client, show, task, index, fields):
    sample = show(task, index)
    seg = client.service(Segment, "segment", timeout=120)
    request = Segment.Request(**fields(sample))
    response = client.call(seg, request)
    assert response.success, response.message
    return sample, response.result


def test_text_query(toy_system):
    client, show = toy_system
    scores = []
    for index in range(5):
        sample, result = segment(client, show, "text", index, lambda s: {"text": s.query})
        scores.append(check(result, sample, None))
    mean_iou_ok(scores)


def test_exemplar_and_sound(toy_system):
    client, show = toy_system
    sample, result = segment(client, show, "exemplar", 20,
                             lambda s: {"exemplar": numpy_to_image(s.exemplar, "rgb8"),
                                        "exemplar_mask": numpy_to_image(s.exemplar_mask.astype(np.uint8) * 255, "mono8")})
    check(result, sample)
    assert result.description == sample.description
    sample, result = segment(client, show, "audio", 30, lambda s: {"audio": numpy_to_audio(s.audio, s.sample_rate, "s16le")})
    check(result, sample)
    assert result.description == sample.description


def test_describe_region(toy_system):
    client, show = toy_system
    sample = show("region", 40)
    desc = client.service(DescribeRegion, "describe_region")
    x0, y0, x1, y1 = sample.box
    r = client.call(desc, DescribeRegion.Request(x_min=x0, y_min=y0, x_max=x1, y_max=y1))
    assert r.success, r.message
    check(r.result, sample)
    assert r.result.description == sample.description


def test_action_and_query_topic(toy_system):
    client, show = toy_system
    action = client.action(Refer, "refer")
    scores, stages = [], []
    for index in (50, 51, 52):
        sample = show("text", index)
        handle = client.send_goal(action, Refer.Goal(text=sample.query), feedback_callback=lambda m: stages.append(m.feedback.stage))
        assert handle.accepted
        result = client.goal_result(handle).result
        assert result.success, result.message
        scores.append(check(result.result, sample, None))
    mean_iou_ok(scores)
    assert "generating" in stages

    results = client.listen(Referral, "/toy/anyref/results")
    pub = client.node.create_publisher(String, "/toy/query", 10)
    client.wait_for(lambda: pub.get_subscription_count() > 0, 30, "the query subscription")
    scores = []
    for index in (53, 54, 55):
        sample = show("text", index)
        before = len(results)
        pub.publish(String(data=sample.query))
        got = client.wait_for(lambda: [m for m in results[before:] if m.query == sample.query], 60, "the answer on ~/results")
        scores.append(check(got[0], sample, None))
    mean_iou_ok(scores)


def test_depth_gives_the_position_within_2_cm(toy_system):
    client, show = toy_system
    sample, result = segment(client, show, "text", 60, lambda s: {"text": s.query})
    check(result, sample)
    assert result.has_position
    vs, us = np.nonzero(sample.mask)  # the object is at 1.0 m (toy_camera.py)
    expected = np.array([np.median((us - SIZE[0] / 2) / FX), np.median((vs - SIZE[1] / 2) / FY), 1.0])
    p = result.position.point
    got = np.array([p.x, p.y, p.z])
    assert np.linalg.norm(got - expected) < 0.02, (got, expected)
    assert result.position.header.frame_id == "toy_camera_optical"


def set_min_score(client, value: float) -> None:
    srv = client.service(SetParameters, "set_parameters")
    param = Parameter(name="min_score", value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
    response = client.call(srv, SetParameters.Request(parameters=[param]))
    assert response.results[0].successful, response.results[0].reason


def test_an_absent_object_is_not_found_the_same_way_on_every_path(toy_system):
    """Issue 11: a text query naming nothing in the scene answers success: true,
    found: false, an empty mask and a description saying it is not in view; the
    ~/segment reply, the ~/refer result and ~/results say it the same way. (The
    toy model answers 0.94 of held-out absent queries so; 3 of 4 scenes here.)"""
    client, show = toy_system
    results = client.listen(Referral, "/toy/anyref/results")  # early: matched by the time it is needed
    diagnostics = client.listen(DiagnosticArray, "/diagnostics")
    seg = client.service(Segment, "segment")
    answers = []
    for index in (70, 71, 72, 73):
        shown = show("text", index)
        absent = ToyWorld(SEED, size=SIZE).sample(index, "text", absent=True)
        assert np.array_equal(absent.image, shown.image)  # the same scene, asked for what is not in it
        response = client.call(seg, Segment.Request(text=absent.query))
        assert response.success, response.message
        answers.append((index, absent.query, response.result))
    not_found = [a for a in answers if not a[2].found]
    assert len(not_found) >= 3, [(q, r.found, r.description) for _, q, r in answers]
    for _, query, result in not_found:
        mask = image_to_mask(result.mask)
        assert mask.shape == (SIZE[1], SIZE[0]) and not mask.any()
        assert not result.has_box and result.mask_area == 0 and not result.has_position
        assert "not in view" in result.description.lower(), result.description
        assert result.header.frame_id == "toy_camera_optical"

    # A query every scene answered "not found" (the same text may be asked in two scenes).
    index, query, answered = next(a for a in not_found if all(not r.found for _, q, r in answers if q == a[1]))
    asked = sum(q == query for _, q, _ in answers)
    show("text", index)
    action = client.action(Refer, "refer")
    handle = client.send_goal(action, Refer.Goal(text=query))
    assert handle.accepted
    result = client.goal_result(handle).result
    assert result.success and not result.result.found and result.result.description == answered.description
    pub = client.node.create_publisher(String, "/toy/query", 10)
    client.wait_for(lambda: pub.get_subscription_count() > 0, 30, "the query subscription")
    pub.publish(String(data=query))
    # ~/results carries every answer to this query: the service's, the action's and the topic's.
    got = client.wait_for(lambda: len(m := [r for r in results if r.query == query]) >= asked + 2 and m, 60,
                          "every answer on ~/results")
    for msg in got:
        assert not msg.found and msg.description == answered.description and not image_to_mask(msg.mask).any()

    def not_found_count() -> int:
        statuses = [s for d in diagnostics[-3:] for s in d.status if s.name.startswith("anyref")]
        return max((int(kv.value) for s in statuses for kv in s.values if kv.key == "answers_not_found"), default=0)

    client.wait_for(lambda: not_found_count() >= len(not_found) + 2, 10, "answers_not_found in /diagnostics")


def test_a_present_object_is_found_and_min_score_reports_a_weak_mask_as_not_found(toy_system):
    """A present object: found: true with a score above min_score and its 3D
    position. With min_score raised above that score (a live parameter), the
    same query answers found: false with the reason in the description, and
    the mask is kept for inspection (no position)."""
    client, show = toy_system
    seg = client.service(Segment, "segment")
    found = []
    for index in (80, 81, 82):
        sample, result = segment(client, show, "text", index, lambda s: {"text": s.query})
        if result.found:
            assert result.score > 0.0 and result.has_position  # min_score 0.0 (config/anyref.yaml)
            assert result.description and not result.description.startswith("not found")
            found.append((index, sample, result))
    assert len(found) >= 2, "the toy model found fewer than 2 of 3 present objects"
    weak = [f for f in found if f[2].score < 0.99] or [f for f in found]
    index, sample, before = min(weak, key=lambda f: f[2].score)
    if before.score >= 0.99:
        pytest.skip(f"every answer scored >= 0.99 (min_score cannot exceed 1.0): {[f[2].score for f in found]}")
    min_score = round((before.score + 1.0) / 2, 3)
    show("text", index)
    try:
        set_min_score(client, min_score)
        response = client.call(seg, Segment.Request(text=sample.query))
    finally:
        set_min_score(client, 0.0)
    assert response.success, response.message
    result = response.result
    assert not result.found and not result.has_position
    assert re.fullmatch(rf"not found: score \d\.\d{{3}} < min_score {min_score:g}; best guess: .+", result.description), \
        result.description
    assert result.description.endswith(f"best guess: {before.description}")
    mask = image_to_mask(result.mask)
    assert result.has_box and result.mask_area == mask.sum() > 0  # kept for inspection
    assert iou(mask, image_to_mask(before.mask)) > 0.9 and result.score == pytest.approx(before.score, abs=0.02)


def test_debug_image_pictures_found_and_not_found_answers_for_a_subscriber(toy_system):
    """~/debug_image (drawn only when someone subscribes): one picture of the
    frame per answer, found or not, with the frame's header and size."""
    client, show = toy_system
    pictures = client.listen(Image, "/toy/anyref/debug_image")
    seg = client.service(Segment, "segment")
    sample = show("text", 90)
    absent = ToyWorld(SEED, size=SIZE).sample(90, "text", absent=True)
    for query in (sample.query, absent.query):
        def answered_with_a_picture():  # until the node has matched this subscription
            before = len(pictures)
            assert client.call(seg, Segment.Request(text=query)).success
            time.sleep(0.3)
            return len(pictures) > before

        client.wait_for(answered_with_a_picture, 60, "a picture on ~/debug_image")
        picture = pictures[-1]
        assert picture.encoding == "rgb8" and (picture.width, picture.height) == SIZE
        assert picture.header.frame_id == "toy_camera_optical"
