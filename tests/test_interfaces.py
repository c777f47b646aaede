"""vision_msgs and tf2_msgs as the node uses them have upstream's type names and
RIHS01 type hashes (ROS 2 Jazzy: vision_msgs 4.1.1), so that a subscriber on a
real ROS install receives what the node publishes. Checked twice: in the type
descriptions rosidl generated (share/<package>/msg/<Type>.json), and in the
hash a real publisher advertises on the ROS graph."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import rclpy

UPSTREAM = {
    "vision_msgs/msg/Detection2DArray": "214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "vision_msgs/msg/Detection2D": "0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "vision_msgs/msg/Detection3DArray": "793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
    "vision_msgs/msg/Detection3D": "ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "vision_msgs/msg/BoundingBox2D": "008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f",
    "vision_msgs/msg/BoundingBox3D": "bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    "vision_msgs/msg/ObjectHypothesisWithPose": "41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
    "vision_msgs/msg/ObjectHypothesis": "51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90",
    "vision_msgs/msg/Pose2D": "b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648",
    "vision_msgs/msg/Point2D": "eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247",
    "vision_msgs/msg/LabelInfo": "3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "vision_msgs/msg/VisionClass": "1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
    "tf2_msgs/msg/TFMessage": "e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
}


def message_class(type_name: str):
    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def share_dir(package: str) -> Path:
    """<prefix>/share/<package> of the installed package (its module is <prefix>/lib/pythonX/site-packages/<package>)."""
    module = Path(importlib.import_module(package).__file__).resolve().parent
    return module.parents[3] / "share" / package


@pytest.mark.parametrize("type_name", sorted(UPSTREAM))
def test_generated_type_description_has_upstreams_hash(type_name):
    package, _, name = type_name.split("/")
    description = json.loads((share_dir(package) / "msg" / f"{name}.json").read_text())
    hashes = {h["type_name"]: h["hash_string"] for h in description["type_hashes"]}
    assert hashes[type_name] == f"RIHS01_{UPSTREAM[type_name]}"


def test_publishers_advertise_upstreams_hashes():
    """The hash on the wire (what a subscriber elsewhere matches against) for each type."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("hash_probe", context=ctx)
        for i, type_name in enumerate(sorted(UPSTREAM)):
            node.create_publisher(message_class(type_name), f"probe_{i}", 1)
            (info,) = node.get_publishers_info_by_topic(f"/probe_{i}")
            assert info.topic_type == type_name
            assert str(info.topic_type_hash) == f"RIHS01_{UPSTREAM[type_name]}", type_name
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
