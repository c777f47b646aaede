"""A query on the ``query`` topic (what anyref_speech publishes) is never met
by silence: asked while the model loads it is kept and answered once loaded;
asked while every place is taken it is kept (the newest win) and answered
later; whatever fails is published on ~/results as "not answered: <why>".
The node runs in its own process (model/toy; the busy and the spoken cases
through the test-only fault entry point, which makes each model call, or
the model load, slow). The spoken case is end to end: espeak-ng speech
published by tests/helpers/audio_publisher.py -> anyref_speech (its own
process) -> ``query`` -> the anyref node."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
import rclpy
from anyref_ros.msg import Referral
from anyref_ros.nodes.conversions import numpy_to_image
from anyref_ros.srv import Segment
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String

from node_harness import Client, start_node, status_count, stop
from testsupport import HELPERS, REPO, spawn_helper, stop_process

sys.path.insert(0, str(HELPERS))
import mic_audio  # noqa: E402

pytestmark = pytest.mark.skipif(not (REPO / "model" / "toy" / "config.json").is_file(),
                                reason="model/toy (the trained toy checkpoint) is not in this checkout")


def red_circle_frame(client: Client) -> Image:
    rgb = np.full((240, 320, 3), 125, np.uint8)
    yy, xx = np.mgrid[:240, :320]
    rgb[(yy - 120) ** 2 + (xx - 160) ** 2 <= 40 ** 2] = (220, 40, 40)
    msg = numpy_to_image(rgb, "rgb8")
    msg.header.stamp = client.node.get_clock().now().to_msg()
    msg.header.frame_id = "cam"
    return msg


@pytest.fixture
def system(request):
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    procs, clients = [], []

    def start(namespace: str, *args: str, faults: str | None = None):
        procs.append(start_node("-p", "checkpoint:=model/toy", "-p", "device:=cpu", "-p", "max_frame_age_s:=0.0",
                                *args, namespace=namespace, faults=faults))
        clients.append(Client(ctx, namespace=namespace))
        return clients[-1]

    yield start
    for c in clients:
        c.close()
    for p in procs:
        stop(p)
    rclpy.try_shutdown(context=ctx)


def by_query(results: list, text: str) -> list:
    return [m for m in list(results) if m.query == text]


def test_a_query_said_while_the_model_loads_is_answered_once_loaded(system):
    client = system("/heldload")
    results = client.listen(Referral, "/heldload/anyref/results")
    diags = client.listen(DiagnosticArray, "/diagnostics")
    camera = client.node.create_publisher(Image, "/heldload/image", qos_profile_sensor_data)
    query = client.node.create_publisher(String, "/heldload/query", 10)
    client.wait_for(lambda: query.get_subscription_count() > 0, 60, "the node's query subscription")
    query.publish(String(data="red circle"))  # the node has just configured: the model is loading
    seg = client.service(Segment, "segment")
    probe = client.call(seg, Segment.Request(text="red circle"))
    answer = client.wait_for(lambda: by_query(results, "red circle"), 120, "the held query's answer",
                             resend=lambda: camera.publish(red_circle_frame(client)), every=0.1)[0]
    assert not answer.description.startswith("not answered"), answer.description
    assert answer.found and answer.mask_area > 0
    if probe.message.startswith("loading the model"):  # it was asked during the load: it was held
        assert client.wait_for(lambda: status_count(diags, "topic_queries_held") >= 1, 10, "the held count")
    assert len(by_query(results, "red circle")) == 1


def test_a_failed_topic_query_is_published_with_why(system):
    client = system("/heldfail")
    results = client.listen(Referral, "/heldfail/anyref/results")
    query = client.node.create_publisher(String, "/heldfail/query", 10)
    client.wait_loaded()
    client.wait_for(lambda: query.get_subscription_count() > 0, 30, "the node's query subscription")
    query.publish(String(data="blue square"))  # no camera frame has arrived
    answer = client.wait_for(lambda: by_query(results, "blue square"), 30, "the unanswered query on ~/results")[0]
    assert not answer.found and answer.id
    assert answer.description.startswith("not answered: no camera frame has arrived yet"), answer.description


def test_busy_topic_queries_are_kept_and_the_newest_win(system):
    """Each model call takes 1.5 s and at most 2 callers wait (max_queue 1):
    of 8 queries sent at once, every one gets exactly one message on ~/results;
    the ones pushed out by newer ones say so; the newest are answered."""
    client = system("/heldbusy", "-p", "max_queue:=1", "-p", "warmup:=false", faults="slow:1.5")
    results = client.listen(Referral, "/heldbusy/anyref/results")
    camera = client.node.create_publisher(Image, "/heldbusy/image", qos_profile_sensor_data)
    query = client.node.create_publisher(String, "/heldbusy/query", 100)
    client.wait_loaded()
    client.wait_for(lambda: query.get_subscription_count() > 0, 30, "the node's query subscription")
    seg = client.service(Segment, "segment")
    client.wait_for(lambda: client.call(seg, Segment.Request(text="x")).message != "" and
                    "no camera frame" not in client.call(seg, Segment.Request(text="x")).message, 60,
                    "the node to have a frame", resend=lambda: camera.publish(red_circle_frame(client)), every=0.2)
    texts = [f"red circle {i}" for i in range(8)]
    for text in texts:
        query.publish(String(data=text))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not all(by_query(results, t) for t in texts):
        camera.publish(red_circle_frame(client))
        time.sleep(0.2)
    counts = {t: len(by_query(results, t)) for t in texts}
    assert all(n == 1 for n in counts.values()), counts
    dropped = [t for t in texts if by_query(results, t)[0].description.startswith("not answered")]
    assert dropped, "8 queries for 2 places and 4 held: some must have been pushed out"
    assert all("newer queries came while it waited" in by_query(results, t)[0].description for t in dropped)
    assert texts[-1] not in dropped and texts[-2] not in dropped  # the newest are answered


@pytest.mark.skipif(not mic_audio.have_espeak(), reason="espeak-ng is not installed (make setup)")
def test_spoken_query_said_as_the_nodes_start_is_answered_once_the_model_is_loaded(system, tmp_path):
    """anyref_speech and the anyref node start together; the anyref node's model
    load takes 40 s longer (test fault plan load:40). "find the red circle" is
    spoken on the audio topic as soon as anyref_speech listens: its query
    reaches the anyref node while the model still loads, is held, and is
    answered (found) on ~/results once the model is loaded, on a frame with a
    red circle."""
    ns = "/heldspoken"
    speech = mic_audio.NodeProcess("anyref_speech", namespace=ns, params_file=REPO / "config" / "speech.yaml",
                                   cwd=REPO)
    client = system(ns, "-p", "warmup:=false", faults="load:40")
    player = None
    try:
        results = client.listen(Referral, f"{ns}/anyref/results")
        utterances = client.listen(String, f"{ns}/anyref_speech/utterances")
        diags = client.listen(DiagnosticArray, "/diagnostics")
        camera = client.node.create_publisher(Image, f"{ns}/image", qos_profile_sensor_data)
        graph = client.node
        client.wait_for(lambda: graph.count_subscribers(f"{ns}/audio") >= 2 and
                        graph.count_subscribers(f"{ns}/query") >= 1 and graph.count_publishers(f"{ns}/query") >= 1,
                        60, "anyref_speech and the anyref node on audio and query")
        seg = client.service(Segment, "segment")
        assert client.call(seg, Segment.Request()).message.startswith("loading the model")
        clip, rate = mic_audio.spoken_clip("find the red circle", tmp_path)
        # It starts once both nodes' audio subscriptions match it (anyref_speech's once it has
        # turned BEST_EFFORT for it), the 1 s of silence in front of the words, then the words.
        player = spawn_helper("audio_publisher", f"{ns}/audio", str(clip), str(rate), "--subscribers", "2")
        try:
            record = client.wait_for(lambda: utterances, 30, "anyref_speech's utterance")[0]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- anyref_speech\n" + "\n".join(speech.lines[-30:])) from None
        # The query went out while the anyref node was still loading its model.
        still = client.call(seg, Segment.Request()).message
        assert still.startswith("loading the model"), (still, record.data)
        answer = client.wait_for(lambda: by_query(results, "red circle"), 120, "the spoken query's answer",
                                 resend=lambda: camera.publish(red_circle_frame(client)), every=0.1)[0]
        assert answer.found and answer.mask_area > 0, answer.description
        assert not client.call(seg, Segment.Request()).message.startswith("loading the model")
        assert client.wait_for(lambda: status_count(diags, "topic_queries_held") >= 1, 10, "the held count")
        assert len(by_query(results, "red circle")) == 1
        assert not speech.matching("Traceback"), "\n".join(speech.lines[-30:])
    finally:
        if player is not None:
            stop_process(player)
        speech.stop()
