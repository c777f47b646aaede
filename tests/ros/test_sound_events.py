"""Sound events, unasked, with real processes: the node on model/toy, a camera
process playing a toy scene (tests/helpers/toy_camera.py) and a "microphone"
process publishing 100 ms AudioChunks at real-time pace
(tests/helpers/audio_publisher.py).

A shape's signature sound after quiet room noise gives exactly one
~/sound_sources answer within 3 s of the sound's end: the right object
(IoU >= 0.6), the shape's name, and the header of a frame that was on camera
during the sound. A steady 50 Hz hum (present from the start), quiet noise
and a single click give none."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from anyref_ros.data.toy import ToyWorld
from anyref_ros.data.toy_audio import SAMPLE_RATE
from anyref_ros.msg import Referral
from anyref_ros.nodes.conversions import image_to_mask

from node_harness import Client, audio_player, scene_switcher, start_node, stop
from testsupport import REPO, spawn_helper, stop_process

SEED = 11  # as test_node_toy: not a training seed
SIZE = (640, 480)
NS = "/hear"
QUIET_RMS = 0.003  # about -50 dBFS of room noise

pytestmark = pytest.mark.skipif(not (REPO / "model" / "toy" / "config.json").is_file(),
                                reason="model/toy (the trained toy checkpoint) is not in this checkout")


@pytest.fixture(scope="module")
def hearing(tmp_path_factory):
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = start_node("-p", "checkpoint:=model/toy", "-p", "device:=cpu", namespace=NS)
    camera = spawn_helper("toy_camera", NS, str(SEED))
    client = Client(ctx, namespace=NS)
    sources: list = []  # (arrival time.time(), Referral)
    client.node.create_subscription(Referral, f"{NS}/anyref/sound_sources",
                                    lambda m: sources.append((time.time(), m)), 10)
    switch = scene_switcher(client, NS)
    world = ToyWorld(SEED, size=SIZE)
    folder = tmp_path_factory.mktemp("audio")

    def show(index: int):
        switch(f"audio {index}")
        return world.sample(index, "audio")

    play = audio_player(folder, f"{NS}/audio", SAMPLE_RATE)

    try:  # (a failed set-up stops the processes too)
        show(0)
        client.wait_loaded(180)
        yield client, show, play, sources
    finally:
        client.close()
        stop_process(camera)
        stop(node)
        rclpy.try_shutdown(context=ctx)


def quiet(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, QUIET_RMS, int(seconds * SAMPLE_RATE)).astype(np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum()))


def test_steady_hum_produces_nothing(hearing):
    """First in the module: the hum is there from the stream's start, as a fan would be."""
    client, show, play, sources = hearing
    show(1)
    rng = np.random.default_rng(1)
    t = np.arange(5 * SAMPLE_RATE) / SAMPLE_RATE
    hum = (0.05 * np.sin(2 * np.pi * 50.0 * t)).astype(np.float32) + quiet(5, rng)
    before = len(sources)
    play(hum, "hum")
    time.sleep(3.0)  # an answer would come within 3 s
    assert len(sources) == before, [m.description for _, m in sources[before:]]


def test_quiet_noise_and_a_click_produce_nothing(hearing):
    client, show, play, sources = hearing
    rng = np.random.default_rng(2)
    before = len(sources)
    play(quiet(5, rng), "quiet")
    clicked = quiet(5, rng)
    click = int(2.5 * SAMPLE_RATE)
    clicked[click:click + 80] += 0.8  # a 5 ms click
    play(clicked, "click")
    time.sleep(3.0)
    assert len(sources) == before, [m.description for _, m in sources[before:]]


def test_shape_sound_is_localised_once(hearing):
    client, show, play, sources = hearing
    sample = show(30)
    rng = np.random.default_rng(3)
    lead, tail = 2.0, 1.5
    stream = np.concatenate([quiet(lead, rng), sample.audio + quiet(2.0, rng)[: sample.audio.shape[0]],
                             quiet(tail, rng)])
    before = len(sources)
    start = play(stream, "shape")
    sound_start, sound_end = start + lead, start + lead + sample.audio.shape[0] / SAMPLE_RATE
    # play() returns when the last chunk was sent (sound end + tail).
    client.wait_for(lambda: len(sources) > before, max(0.1, sound_end + 5.0 - time.time()),
                    "a ~/sound_sources answer")
    time.sleep(2.5)  # ... and no second one
    got = sources[before:]
    assert len(got) == 1, [m.description for _, m in got]
    arrival, msg = got[0]
    assert arrival - sound_end <= 3.0, f"answered {arrival - sound_end:.2f} s after the sound's end"
    assert msg.reference_type == "audio"
    assert msg.header.frame_id == "toy_camera_optical"
    frame_t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    assert sound_start <= frame_t <= sound_end, (frame_t - sound_start, sound_end - sound_start)
    mask = image_to_mask(msg.mask)
    assert mask.shape == (SIZE[1], SIZE[0])
    shape = sample.description
    assert msg.description == shape, f"the model named {msg.description!r}, the sound is a {shape}'s"
    assert iou(mask, sample.mask) >= 0.6, f"IoU {iou(mask, sample.mask):.2f}"
    assert msg.has_position and abs(msg.position.point.z - 1.0) < 0.05  # toy_camera: objects at 1.0 m
