"""The demo's microphone array: where a sound came from, joined with the camera.

The demo robot carries a 4-mic circular array (3.2 cm radius) 6 cm above its
camera (:mod:`anyref_ros.data.toy_direction`); its pose is on ``/tf_static``
(``toy_camera`` <- ``demo_microphone``, and ``base_link`` <- ``toy_camera``),
the camera model on ``camera_info``, and the node runs with ``mic_positions``.
Every sound the demo plays is heard with each microphone's delays from where
it is made. :func:`run_direction` shows the two cases a single microphone
cannot answer: two identical objects of which one sounds (the answer is that
one: the picture marks where the sound came from), and a sound from outside
the field of view (the answer is "not found", saying where: the picture has
an arrow at the image's edge).
"""

from __future__ import annotations

import time

import numpy as np

from anyref_ros.data.toy_direction import CIRCULAR_4MIC, audio_to_camera

#: mic_positions of the demo node (the flat form of the ROS parameter).
MIC_POSITIONS = [round(float(v), 5) for mic in CIRCULAR_4MIC for v in mic]
#: The camera in the robot's base frame: 1.2 m up, looking forward (optical z = base x).
CAMERA_IN_BASE = np.array([[0.0, 0.0, 1.0, 0.1], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 1.2], [0.0, 0.0, 0.0, 1.0]])


def publish_array_pose(node) -> None:
    """The array's and the camera's poses on /tf_static (kept for late joiners)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from anyref_ros.nodes.anyref.transforms import transform_stamped

    from .demo import CAMERA_FRAME, MIC_FRAME

    static = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_publisher(TFMessage, "/tf_static", static).publish(TFMessage(transforms=[
        transform_stamped(CAMERA_FRAME, MIC_FRAME, audio_to_camera()),
        transform_stamped("base_link", CAMERA_FRAME, CAMERA_IN_BASE)]))


def in_camera(msg) -> np.ndarray:
    """``msg.direction`` (base_link, the camera frame or the array's) in the camera frame."""
    from .demo import MIC_FRAME

    d = msg.direction
    v = np.array([d.vector.x, d.vector.y, d.vector.z])
    if d.header.frame_id == "base_link":
        return CAMERA_IN_BASE[:3, :3].T @ v
    return audio_to_camera()[:3, :3] @ v if d.header.frame_id == MIC_FRAME else v


def mark_direction(picture: np.ndarray, msg, k: list[float]) -> None:
    """A ring where the sound came from, or an arrow at the image's edge towards it."""
    import cv2

    if not msg.has_direction:
        return
    h, w = picture.shape[:2]
    colour = (255, 200, 40)
    v = in_camera(msg)
    if v[2] > 1e-6:
        u, y = int(round(k[0] * v[0] / v[2] + k[2])), int(round(k[4] * v[1] / v[2] + k[5]))
        if 0 <= u < w and 0 <= y < h:
            cv2.circle(picture, (u, y), 14, colour, 2, cv2.LINE_AA)
            cv2.drawMarker(picture, (u, y), colour, cv2.MARKER_CROSS, 10, 1, cv2.LINE_AA)
            return
    tip, tail = ((w - 8, h // 2), (w - 70, h // 2)) if v[0] > 0 else ((8, h // 2), (70, h // 2))
    cv2.arrowedLine(picture, tail, tip, colour, 4, cv2.LINE_AA, tipLength=0.4)


def run_direction(demo, namespace: str) -> None:
    """Two identical objects, one sounds; then a sound from outside the view (module docstring)."""
    from anyref_ros.data.toy_audio import SAMPLE_RATE
    from anyref_ros.data.toy_direction import ToyDirectionWorld, camera_for
    from anyref_ros.msg import Referral
    from anyref_ros.nodes.conversions import image_to_mask

    from .demo import DEMO_SEED, SIZE, SOUND_EVENT_WAIT_S, Answer, AudioPlayer, Camera, iou

    world = ToyDirectionWorld(DEMO_SEED, size=SIZE)
    camera = Camera(demo.node, f"{namespace}/image", info_topic=f"{namespace}/camera_info")
    player = AudioPlayer(demo.node, f"{namespace}/audio")
    sources: list[Referral] = []
    demo.node.create_subscription(Referral, f"{namespace}/anyref/sound_sources", sources.append, 10)
    rng = np.random.default_rng(DEMO_SEED)
    fx, fy, cx, cy, _, _ = camera_for(SIZE)
    k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    try:
        for kind, query in (("alike", "which of two alike objects made that sound"),
                            ("out_of_view", "a sound from outside the view")):
            sample = world.sample(0, kind)
            camera.show(sample.image)
            demo._wait_frames(camera)
            quiet = rng.normal(0.0, 0.003, (int(1.5 * SAMPLE_RATE), sample.audio.shape[1])).astype(np.float32)
            answer = Answer(scene=0, path="sound_direction", query=query,
                            expected=sample.description if kind == "alike" else "out of view")
            before, t = len(sources), time.monotonic()
            player.play(np.concatenate([quiet, sample.audio, quiet]), SAMPLE_RATE)
            msg = demo._wait_new(sources, before, timeout=SOUND_EVENT_WAIT_S)
            if msg is None:
                answer.message = f"no ~/sound_sources answer within {SOUND_EVENT_WAIT_S:.0f} s of the sound's end"
                answer.latency_ms = (time.monotonic() - t) * 1000.0
                demo._report(answer)
                continue
            mask = image_to_mask(msg.mask)
            answer.success, answer.message = True, "ok"
            answer.description, answer.score, answer.found = msg.description, float(msg.score), bool(msg.found)
            answer.latency_ms = float(msg.latency_ms)
            answer.iou = iou(mask, sample.mask)
            answer.box = [msg.x_min, msg.y_min, msg.x_max, msg.y_max] if msg.has_box else None
            v = msg.direction.vector
            answer.spatial = {"has_direction": bool(msg.has_direction), "frame": msg.direction.header.frame_id,
                              "direction": [round(float(c), 4) for c in (v.x, v.y, v.z)], "kind": kind}
            demo._picture(answer, sample.image, mask, sample.mask, None,
                          draw=lambda picture, m=msg: mark_direction(picture, m, k))
            demo._report(answer)
    finally:
        player.close()
        camera.close()
