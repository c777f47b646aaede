"""Where a sound came from, with real processes: the node on model/toy with
``mic_positions`` of a 4-mic circular array (3.2 cm radius), the toy camera
process showing direction scenes (tests/helpers/toy_camera.py:
``ToyDirectionWorld``, 640x480, its camera model in CameraInfo), the array's
pose on /tf_static (6 cm above the camera, robot-style axes) and a
"microphone" process playing 4-channel audio whose channels carry each
microphone's fractional delays from the sounding object's position.

* Two identical objects, one sounds: ~/sound_direction within 5 degrees of
  the truth (in the audio frame), and the ~/sound_sources answer is the one
  that sounded (IoU >= 0.6), with ``Referral.direction`` in the camera frame.
* A sound from outside the field of view: found false, the direction set,
  the description saying where ("... to the right, out of view").
* ``target_frame`` base_link: the direction in base_link; a target_frame
  with no transform: the direction in the camera frame, the answer unchanged.
* A sound from where nothing was masked: re-asked on a crop, answered.
* Audio of another channel count than mic_positions: answered without a
  direction, the mismatch counted in /diagnostics."""

from __future__ import annotations

import time

import numpy as np
import pytest
from anyref_ros.data.toy_audio import SAMPLE_RATE
from anyref_ros.data.toy_audio import shape_sound
from anyref_ros.data.toy_direction import CIRCULAR_4MIC, ToyDirectionWorld, audio_to_camera, heard_from
from anyref_ros.data.toy_render import ToyObject, object_mask
from anyref_ros.msg import Referral
from anyref_ros.nodes.anyref.transforms import transform_stamped
from anyref_ros.nodes.conversions import image_to_mask
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Vector3Stamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from node_harness import anyref_status, audio_player, scene_switcher, set_param, status_count, toy_node
from testsupport import REPO, spawn_helper, stop_process

SEED = 11
SIZE = (640, 480)
NS = "/heardir"
QUIET_RMS = 0.003
MIC_FRAME, CAMERA_FRAME = "test_mic", "toy_camera_optical"  # the audio and camera helpers' frame ids
CAMERA_IN_BASE = np.array([[0.0, 0.0, 1.0, 0.1], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.8], [0, 0, 0, 1.0]])

pytestmark = pytest.mark.skipif(not (REPO / "model" / "toy" / "config.json").is_file(),
                                reason="model/toy (the trained toy checkpoint) is not in this checkout")


@pytest.fixture(scope="module")
def array(tmp_path_factory):
    flat = ",".join(f"{v:.5f}" for m in CIRCULAR_4MIC for v in m)
    with toy_node(NS, "-p", f"mic_positions:=[{flat}]") as client:
        camera = spawn_helper("toy_camera", NS, str(SEED))
        try:
            static = client.node.create_publisher(TFMessage, "/tf_static", QoSProfile(
                depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
            static.publish(TFMessage(transforms=[transform_stamped(CAMERA_FRAME, MIC_FRAME, audio_to_camera()),
                                                 transform_stamped("base_link", CAMERA_FRAME, CAMERA_IN_BASE)]))
            sources: list = client.listen(Referral, f"{NS}/anyref/sound_sources")
            directions: list = client.listen(Vector3Stamped, f"{NS}/anyref/sound_direction")
            client.diags = client.listen(DiagnosticArray, "/diagnostics")
            switch = scene_switcher(client, NS)
            world = ToyDirectionWorld(SEED, size=SIZE)

            def show(kind: str, index: int):
                switch(f"direction_{kind} {index}")
                return world.sample(index, kind)

            play = audio_player(tmp_path_factory.mktemp("audio"), f"{NS}/audio", SAMPLE_RATE)
            yield client, show, play, sources, directions
        finally:
            stop_process(camera)


def quiet(seconds: float, rng: np.random.Generator, channels: int = 4) -> np.ndarray:
    return rng.normal(0.0, QUIET_RMS, (int(seconds * SAMPLE_RATE), channels)).astype(np.float32)


def heard(client, play, sources, audio: np.ndarray, name: str, rng) -> Referral:
    """Play ``audio`` between quiet stretches; the one answer it gets."""
    before = len(sources)
    channels = audio.shape[1] if audio.ndim == 2 else 1
    stream = np.concatenate([quiet(1.5, rng, channels).reshape(-1, channels),
                             audio.reshape(-1, channels) + quiet(audio.shape[0] / SAMPLE_RATE, rng, channels),
                             quiet(1.5, rng, channels)])
    play(stream if channels > 1 else stream[:, 0], name)
    client.wait_for(lambda: len(sources) > before, 15, f"an answer to {name}")
    time.sleep(0.5)
    assert len(sources) == before + 1, [m.description for m in sources[before:]]
    return sources[-1]


def angle(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


def heard_truth(sample) -> np.ndarray:
    """The true direction in the audio frame as the planar array reports it: above its plane."""
    truth = audio_to_camera()[:3, :3].T @ np.asarray(sample.metadata["array"]["direction"])
    truth[2] = abs(truth[2])
    return truth


def vec(v) -> np.ndarray:
    return np.array([v.x, v.y, v.z])


@pytest.mark.parametrize("index", [0, 1])
def test_the_sounding_one_of_two_alike_objects(array, index):
    client, show, play, sources, directions = array
    sample = show("alike", index)
    rot = audio_to_camera()[:3, :3]
    truth_mic = heard_truth(sample)
    before = len(directions)
    answer = heard(client, play, sources, sample.audio, f"alike{index}", np.random.default_rng(index))
    assert len(directions) > before
    said = directions[-1]
    assert said.header.frame_id == MIC_FRAME and abs(np.linalg.norm(vec(said.vector)) - 1) < 1e-6
    assert angle(vec(said.vector), truth_mic) < 5.0
    assert answer.found and answer.has_direction, answer.description
    assert answer.direction.header.frame_id == CAMERA_FRAME
    assert angle(rot.T @ vec(answer.direction.vector), vec(said.vector)) < 1e-3
    mask = image_to_mask(answer.mask)
    target = sample.masks[0]
    assert np.logical_and(mask, target).sum() / np.logical_or(mask, target).sum() >= 0.6


def test_a_sound_from_outside_the_view_is_not_a_mask(array):
    client, show, play, sources, directions = array
    sample = show("out_of_view", 0)
    az = np.degrees(np.arctan2(*np.asarray(sample.metadata["array"]["direction"])[[0, 2]]))
    answer = heard(client, play, sources, sample.audio, "away", np.random.default_rng(7))
    assert not answer.found and answer.has_direction and answer.mask_area == 0
    side = "right" if az > 0 else "left"
    assert f"\u00b0 to the {side}, out of view" in answer.description, answer.description
    assert answer.description.startswith("heard ")


def test_the_direction_is_given_in_target_frame_or_else_the_camera_frame(array):
    """target_frame base_link: Referral.direction in base_link; a target_frame
    with no transform: still the right object, the direction in the camera frame."""
    client, show, play, sources, directions = array
    sample = show("alike", 3)
    rng = np.random.default_rng(11)
    try:
        set_param(client, "target_frame", "base_link")
        answer = heard(client, play, sources, sample.audio, "base", rng)
        assert answer.found and answer.direction.header.frame_id == "base_link"
        in_mic = audio_to_camera()[:3, :3].T @ CAMERA_IN_BASE[:3, :3].T @ vec(answer.direction.vector)
        assert angle(in_mic, heard_truth(sample)) < 5.0
        set_param(client, "target_frame", "nowhere")
        answer = heard(client, play, sources, sample.audio, "nowhere", rng)
        mask = image_to_mask(answer.mask)
        target = sample.masks[0]
        assert answer.found and answer.direction.header.frame_id == CAMERA_FRAME
        assert np.logical_and(mask, target).sum() / np.logical_or(mask, target).sum() >= 0.6
    finally:
        set_param(client, "target_frame", "")


def test_a_sound_where_nothing_was_masked_re_asks_on_a_crop(array):
    """A sound from an empty part of the view (where the model masked
    nothing): the model is asked again on a crop around the direction, and
    the event is answered either way (an object there, or "nothing found in
    that direction")."""
    import cv2

    client, show, play, sources, directions = array
    sample = show("alike", 4)
    objects = np.zeros(sample.image.shape[:2], np.uint8)
    for o in sample.metadata["objects"]:
        objects[object_mask(ToyObject(**{k: o[k] for k in ("shape", "colour", "rgb", "x0", "y0", "size")}),
                            SIZE)] = 1
    far = cv2.distanceTransform(1 - objects, cv2.DIST_L2, 5)
    v, u = np.unravel_index(int(np.argmax(far)), far.shape)  # the pixel farthest from every object
    rng = np.random.default_rng(13)
    fx, fy, cx, cy = sample.metadata["array"]["camera"][:4]
    point = np.array([(u - cx) / fx, (v - cy) / fy, 1.0]) * 2.0
    sound = np.concatenate([np.zeros(4000, np.float32), shape_sound(rng, sample.description, 1.75, SAMPLE_RATE)])
    before = status_count(client.diags, "sound_reasked")
    try:
        set_param(client, "sound_direction_tolerance_deg", 5.0)
        answer = heard(client, play, sources, heard_from(rng, sound, point, snr_db=15.0), "empty", rng)
    finally:
        set_param(client, "sound_direction_tolerance_deg", 20.0)
    assert answer.has_direction and (answer.found or "nothing found in that direction" in answer.description)
    client.wait_for(lambda: status_count(client.diags, "sound_reasked") > before, 10,
                    f"the re-ask counted (answer: {answer.description!r}, found {answer.found})")


def test_audio_of_another_channel_count_gets_no_direction(array):
    client, show, play, sources, directions = array
    sample = show("alike", 2)
    before = len(directions)
    answer = heard(client, play, sources, sample.audio[:, 0], "mono", np.random.default_rng(9))
    assert not answer.has_direction and len(directions) == before
    client.wait_for(lambda: status_count(client.diags, "audio_channel_mismatch") > 0, 10, "the mismatch counted")
    values = anyref_status(client.diags)[2]
    assert values["microphones"] == "4" and values["audio_channels"] == "1"
