"""anyref-demo end to end (its own node process, toy camera, every query
path), and its rosbag2 mode: a bag written here plays as the camera and the
answers are recorded into a new bag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from testsupport import REPO, child_env


def run_demo(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("anyref-demo")
    env = child_env()
    return subprocess.run([str(exe), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(300)
def test_demo_writes_pictures_and_summary(tmp_path):
    """What ``make demo`` runs (model/toy), with one scene per path: every
    path answered, and the query for an object absent from the scene
    answered "not found" in summary.json and in its picture."""
    from PIL import Image

    from anyref_ros.drawing import NOT_FOUND_COLOUR

    out = tmp_path / "demo"
    proc = run_demo("--checkpoint", "model/toy", "--scenes", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    paths = [a["path"] for a in summary["answers"]]
    assert sorted(paths) == sorted(["segment_text", "segment_absent", "query_topic", "segment_exemplar", "segment_sound",
                                    "describe_region", "segment_3d", "watch", "sound_event", "spoken_query",
                                    "sound_direction", "sound_direction"])
    assert summary["succeeded"] == summary["queries"] == 12, [a["message"] for a in summary["answers"]]
    # the microphone array: the sounding one of two identical objects, a sound from outside the view
    alike, away = [a for a in summary["answers"] if a["path"] == "sound_direction"]
    assert alike["found"] is True and alike["iou"] >= 0.6 and alike["spatial"]["frame"] == "base_link", alike
    assert away["found"] is False and "out of view" in away["description"] and away["spatial"]["has_direction"]
    watched = next(a["spatial"] for a in summary["answers"] if a["path"] == "watch")
    assert watched["frames_answered"] >= 5 and len(watched["ids"]) == 1 and watched["median_box_iou"] >= 0.7
    spatial = next(a["spatial"] for a in summary["answers"] if a["path"] == "segment_3d")
    assert spatial["frame"] == "base_link" and spatial["points"] > 100
    assert spatial["centre_error_cm"] < 1.0  # the oriented box against the ray-cast truth
    for a in summary["answers"]:
        assert a["iou"] is not None and a["latency_ms"] > 0
        assert isinstance(a["found"], bool) and 0.0 <= a["score"] <= 1.0
        assert (out / a["picture"]).is_file()
    by_path = {a["path"]: a for a in summary["answers"]}
    present, absent = by_path["segment_text"], by_path["segment_absent"]
    assert present["found"] is True and present["iou"] > 0.5, present
    # the absent object: same scene as the text query, a colour and shape not in it
    assert absent["scene"] == present["scene"] and absent["query"] != present["query"]
    assert absent["found"] is False and "not in view" in absent["description"], absent
    assert absent["box"] is None and absent["iou"] == 1.0  # an empty mask, as the empty ground truth
    assert absent["query"] in summary["not_found"] and present["query"] not in summary["not_found"]
    # its picture carries the red "not found" banner; the found one's does not
    top_left = lambda a: np.asarray(Image.open(out / a["picture"]).convert("RGB"))[2, 2]
    assert tuple(top_left(absent)) == NOT_FOUND_COLOUR
    assert tuple(top_left(present)) != NOT_FOUND_COLOUR
    assert (out / "contact_sheet.png").stat().st_size > 10_000
    assert f"pictures in {out / 'answers'}" in proc.stdout


def write_bag(path: Path, topic: str, frames: int = 5) -> None:
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from anyref_ros.nodes.conversions import numpy_to_image

    store = get_typestore(Stores.ROS2_JAZZY)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=store)
        for i in range(frames):
            msg = numpy_to_image(np.full((120, 160, 3), 40 * i, np.uint8), "rgb8")
            msg.header.frame_id = "bag_camera"
            writer.write(conn, 1_000_000_000 + i * 100_000_000, serialize_message(msg))


@pytest.mark.timeout(300)
def test_demo_plays_a_bag_and_records_answers(tmp_path):
    from rosbags.rosbag2 import Reader
    from rclpy.serialization import deserialize_message

    from anyref_ros.msg import Referral

    bag = tmp_path / "camera_bag"
    write_bag(bag, "/cam/image_raw")
    record = tmp_path / "answers_bag"
    proc = run_demo("--checkpoint", "tiny", "--bag", str(bag), "--image-topic", "/cam/image_raw",
                    "--query", "red circle", "--query", "blue square", "--record", str(record),
                    "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with Reader(record) as reader:
        msgs = [deserialize_message(bytes(raw), Referral) for _c, _t, raw in reader.messages()]
    assert [m.query for m in msgs] == ["red circle", "blue square"]
    assert all(m.header.frame_id == "bag_camera" and m.mask.width == 160 for m in msgs)
