"""The node on the embedded toy model, as a user would run it: the console
entry point with --ros-args, a camera process playing 640x480 toy scenes
(BEST_EFFORT, with depth and camera info), and every query path answering
correctly (IoU >= 0.6 against the ground truth) with the frame's header; depth
gives the 3D position within 2 cm."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from anyref_ros.action import Refer
from anyref_ros.nodes.conversions import image_to_mask, numpy_to_audio, numpy_to_image
from anyref_ros.data.toy import ToyWorld
from anyref_ros.msg import Referral
from anyref_ros.srv import DescribeRegion, Segment
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

    def show(task: str, index: int):
        switch(f"{task} {index}")
        time.sleep(0.2)  # the frames the camera acknowledged reach the node
        return world.sample(index, task)

    show("text", 0)  # until the node has loaded the model and receives the camera
    seg = client.service(Segment, "segment", timeout=120)
    client.wait_for(lambda: client.call(seg, Segment.Request(text="red circle")).success, 120, "the node answering")
    yield client, show
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
