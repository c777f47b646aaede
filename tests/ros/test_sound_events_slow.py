"""A sound event that waits while the model is slow keeps its own audio: the
node (model/toy, its own process, through the test-only fault entry point
that makes every model call take 8 s more) hears a shape's sound, then the
same sound again 3 s later; by the time the first answer is done the audio
ring (3.5 s) has moved past the second sound, yet both are answered on
~/sound_sources, the second with its own clip."""

from __future__ import annotations


import numpy as np
import pytest
import rclpy
from anyref_ros.data.toy import ToyWorld
from anyref_ros.data.toy_audio import SAMPLE_RATE
from anyref_ros.msg import Referral

from node_harness import Client, scene_switcher, start_node, stop
from testsupport import REPO, spawn_helper, stop_process

NS = "/slowhear"
SEED = 11

pytestmark = pytest.mark.skipif(not (REPO / "model" / "toy" / "config.json").is_file(),
                                reason="model/toy (the trained toy checkpoint) is not in this checkout")


def test_a_waiting_sound_event_keeps_its_own_clip(tmp_path):
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = start_node("-p", "checkpoint:=model/toy", "-p", "device:=cpu", "-p", "warmup:=false",
                      namespace=NS, faults="slow:8")
    camera = spawn_helper("toy_camera", NS, str(SEED))
    client = Client(ctx, namespace=NS)
    player = None
    try:
        sources: list = []
        client.node.create_subscription(Referral, f"{NS}/anyref/sound_sources", sources.append, 10)
        scene_switcher(client, NS)("audio 30")
        sample = ToyWorld(SEED, size=(640, 480)).sample(30, "audio")
        client.wait_loaded(180)
        rng = np.random.default_rng(4)
        quiet = lambda s: rng.normal(0.0, 0.003, int(s * SAMPLE_RATE)).astype(np.float32)  # noqa: E731
        sound = sample.audio + quiet(sample.audio.shape[0] / SAMPLE_RATE)[: sample.audio.shape[0]]
        stream = np.concatenate([quiet(2.0), sound, quiet(3.0), sound, quiet(9.0)])
        path = tmp_path / "two.npy"
        np.save(path, stream)
        player = spawn_helper("audio_publisher", f"{NS}/audio", str(path), str(SAMPLE_RATE))
        client.wait_for(lambda: len(sources) >= 2, 60, "two ~/sound_sources answers")
        assert [m.description for m in sources[:2]] == [sample.description] * 2, [m.description for m in sources]
    finally:
        if player is not None:
            stop_process(player)
        client.close()
        stop_process(camera)
        stop(node)
        rclpy.try_shutdown(context=ctx)
