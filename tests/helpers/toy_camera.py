"""A camera process playing toy-world scenes: 640x480 rgb8 BEST_EFFORT at 10 Hz,
with a matching depth image (16UC1 mm: the scene's objects at 1.0 m in front
of a 2.0 m background) and CameraInfo on every tick, all with one stamp.

Usage: toy_camera.py NAMESPACE SEED
Listen on NAMESPACE/camera/scene (std_msgs/String "TASK INDEX"): switch to
ToyWorld(SEED, 640x480).sample(INDEX, TASK) (TASK "direction_alike" or
"direction_out_of_view": ToyDirectionWorld(SEED, 640x480).sample(INDEX, KIND),
with that world's camera model in CameraInfo); after two frames of the new scene
have been published it answers on NAMESPACE/camera/scene_ack with the same text.
"""

import sys
import threading

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

import helper_node
from anyref_ros.nodes.conversions import numpy_to_image
from anyref_ros.data.toy import ToyWorld
from anyref_ros.data.toy_direction import ToyDirectionWorld
from anyref_ros.data.toy_render import ToyObject, object_mask

SIZE = (640, 480)
FX = FY = 500.0


def main() -> None:
    ns, seed = sys.argv[1], int(sys.argv[2])
    node = helper_node.create("toy_camera")
    world, heard = ToyWorld(seed, size=SIZE), ToyDirectionWorld(seed, size=SIZE)
    pubs = {
        "image": node.create_publisher(Image, f"{ns}/image", qos_profile_sensor_data),
        "depth": node.create_publisher(Image, f"{ns}/depth", qos_profile_sensor_data),
        "info": node.create_publisher(CameraInfo, f"{ns}/camera_info", qos_profile_sensor_data),
    }
    ack = node.create_publisher(String, f"{ns}/camera/scene_ack", 10)
    state = {"image": None, "depth": None, "pending": None, "ticks": 0, "k": (FX, FY, SIZE[0] / 2, SIZE[1] / 2)}
    lock = threading.Lock()

    def on_scene(msg: String) -> None:
        task, index = msg.data.split()
        if task.startswith("direction_"):
            sample = heard.sample(int(index), task.removeprefix("direction_"))
            k = tuple(sample.metadata["array"]["camera"][:4])
        else:
            sample, k = world.sample(int(index), task), (FX, FY, SIZE[0] / 2, SIZE[1] / 2)
        depth = np.full(sample.image.shape[:2], 2000, np.uint16)
        for o in sample.metadata["objects"]:
            fields = {k: o[k] for k in ("shape", "colour", "rgb", "x0", "y0", "size")}
            depth[object_mask(ToyObject(**fields), SIZE)] = 1000
        with lock:
            state.update(image=sample.image, depth=depth, pending=msg.data, ticks=0, k=k)

    node.create_subscription(String, f"{ns}/camera/scene", on_scene, 10)

    def tick() -> None:
        with lock:
            image, depth, (fx, fy, cx, cy) = state["image"], state["depth"], state["k"]
        if image is None:
            return
        stamp = node.get_clock().now().to_msg()
        img = numpy_to_image(image, "rgb8")
        dep = numpy_to_image(depth, "16UC1")
        info = CameraInfo(width=SIZE[0], height=SIZE[1], k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])
        for m in (img, dep, info):
            m.header.stamp = stamp
            m.header.frame_id = "toy_camera_optical"
        pubs["info"].publish(info)
        pubs["depth"].publish(dep)
        pubs["image"].publish(img)
        with lock:
            state["ticks"] += 1
            if state["pending"] is not None and state["ticks"] >= 2:
                ack.publish(String(data=state["pending"]))
                state["pending"] = None

    node.create_timer(0.1, tick)
    helper_node.spin(node)


if __name__ == "__main__":
    main()
