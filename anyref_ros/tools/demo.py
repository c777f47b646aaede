"""anyref-demo: the node on the embedded model, end to end, with pictures.

Starts ``anyref_node`` in its own process, plays toy scenes (640x480) as a
10 Hz BEST_EFFORT camera, and asks through every path a user has: typed
queries through ``~/segment`` and the ``query`` topic, an exemplar image, a
sound, a region to describe, and one typed query for an object that is not
in the scene (answered "not found"). Then a 3D scene with depth and the
camera's pose on /tf_static: the answer in ``base_link``, its oriented box
drawn back into the picture and a top view of the object's points
(:mod:`anyref_ros.tools.demo_grasp`). Then a standing query follows a moving
object (a strip of frames with its id, the label image, an animated GIF:
:mod:`anyref_ros.tools.demo_watch`). Then the robot hears: a shape's sound in a
quiet room is localised unasked (``~/sound_sources``), and a sentence spoken
by espeak-ng goes through ``anyref_speech`` to the ``query`` topic; the
robot's 4-mic array tells which of two identical objects made a sound, and
that a sound came from outside the view (:mod:`anyref_ros.tools.demo_direction`).
For each
answer it writes a picture (the object outlined in its own colours on a
darkened frame, the answer and its score; the ground-truth outline in green;
a red "not found" banner when nothing was found), then a contact sheet and
``summary.json`` with every query, whether it was found, its score, its IoU
against the ground truth and its latency.

    anyref-demo                         # model/toy, 3 scenes per path, output in ./demo_output
    anyref-demo --checkpoint tiny --scenes 1 --out demo_tiny
    anyref-demo --bag run.mcap --image-topic /camera/image_raw --query "red circle" --record answers

With ``--bag`` the camera is a recorded rosbag2 (MCAP or sqlite3, read with
``rosbags``), played at its recorded rate, and ``--query`` texts are asked on
its frames (no ground truth, so no IoU). ``--record`` writes the node's
answers (``~/results``) into a new bag.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from anyref_ros import ros_env
from anyref_ros.tools.demo_direction import MIC_POSITIONS
from anyref_ros.workers import Worker

NAMESPACE = "/demo"
SIZE = (640, 480)
DEMO_SEED = 7  # scenes of the toy world shown by the demo (not a training seed)
GT_COLOUR = (40, 255, 40)
CAMERA_FRAME = "toy_camera"  # the demo camera's (optical) frame
MIC_FRAME = "demo_microphone"  # the demo microphone array's frame: x forward, y left, z up
#: Seconds after a played sound for its ~/sound_sources answer (it comes in ~1 s; more on a loaded machine).
SOUND_EVENT_WAIT_S = 15.0


@dataclass
class Answer:
    scene: int
    path: str  # segment_text, segment_absent, query_topic, segment_exemplar, segment_sound, describe_region, ...
    query: str
    expected: Optional[str]
    description: str = ""
    success: bool = False
    message: str = ""
    iou: Optional[float] = None
    found: Optional[bool] = None  # Referral.found: a mask was produced and accepted
    score: float = 0.0
    latency_ms: float = 0.0
    picture: str = ""
    box: Optional[list[int]] = field(default=None)
    spatial: Optional[dict] = field(default=None)  # the 3D answer in base_link against the truth (segment_3d)


# ------------------------------------------------------------------ camera
class Camera:
    """Publishes the current frame at a fixed rate with fresh stamps (and,
    with ``info_topic``, the toy camera model's CameraInfo with each frame:
    60 degrees wide, :func:`anyref_ros.data.toy_direction.camera_for`)."""

    def __init__(self, node, topic: str, rate_hz: float = 10.0, info_topic: Optional[str] = None) -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image

        self._node = node
        self._pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
        self._info_pub = None if info_topic is None else node.create_publisher(CameraInfo, info_topic,
                                                                              qos_profile_sensor_data)
        self._period = 1.0 / rate_hz
        self._frame: Optional[np.ndarray] = None
        self._stamps: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._worker = Worker("demo-camera", self._run, join_timeout=1.0, report=node.get_logger().warning)
        self._worker.start()

    def show(self, rgb: np.ndarray) -> None:
        with self._lock:
            self._frame = rgb
            self._stamps = []

    def stamps(self) -> list[tuple[int, int]]:
        """Stamps of the frames published since the last :meth:`show`."""
        with self._lock:
            return list(self._stamps)

    def _run(self, stop: threading.Event) -> None:
        from anyref_ros.nodes.conversions import numpy_to_image

        while not stop.is_set():
            with self._lock:
                frame = self._frame
            if frame is not None:
                msg = numpy_to_image(frame, "rgb8")
                msg.header.frame_id = CAMERA_FRAME
                msg.header.stamp = self._node.get_clock().now().to_msg()
                if self._info_pub is not None:
                    self._info_pub.publish(camera_info(msg.header, frame.shape[1], frame.shape[0]))
                self._pub.publish(msg)
                with self._lock:
                    if frame is self._frame:
                        self._stamps.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
            stop.wait(self._period)

    def close(self) -> None:
        self._worker.stop()


class AudioPlayer:
    """Publishes audio on an AudioChunk topic at real-time pace (100 ms chunks,
    s16le, stamped with the capture time of their first sample), as
    ``anyref_mic`` does from a microphone."""

    def __init__(self, node, topic: str, chunk_s: float = 0.1) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from anyref_ros.msg import AudioChunk

        self._node = node
        # RELIABLE like anyref_mic: anyref_speech subscribes RELIABLE, the anyref node BEST_EFFORT.
        self._pub = node.create_publisher(AudioChunk, topic, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self._chunk_s = chunk_s

    def play(self, samples: np.ndarray, rate: int) -> None:
        from anyref_ros.nodes.conversions import numpy_to_audio

        step = int(rate * self._chunk_s)
        start = time.monotonic()
        t0 = self._node.get_clock().now().nanoseconds
        for i, k in enumerate(range(0, len(samples), step)):
            delay = start + i * self._chunk_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            msg = numpy_to_audio(np.clip(samples[k:k + step], -1.0, 1.0), rate, "s16le")
            stamp = t0 + int(k * 1e9 / rate)
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp // 10**9, stamp % 10**9
            msg.header.frame_id = MIC_FRAME
            self._pub.publish(msg)

    def subscribers(self) -> int:
        return self._pub.get_subscription_count()

    def close(self) -> None:
        self._node.destroy_publisher(self._pub)


def absent_pair(objects: list[dict]) -> str:
    """A "{colour} {shape}" naming no object of a toy scene (objects as in
    ``Sample.metadata["objects"]``): preferably one whose colour and shape
    both occur, on different objects, so only the pair tells it apart."""
    from anyref_ros.data.toy_render import COLOURS, SHAPES

    pairs = {(o["colour"], o["shape"]) for o in objects}
    colours, shapes = {c for c, _ in pairs}, {s for _, s in pairs}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in pairs]
    near = [(c, s) for c, s in absent if c in colours and s in shapes]
    colour, shape = (near or absent)[0]
    return f"{colour} {shape}"


def object_mask_of(obj: dict, size: tuple[int, int]) -> np.ndarray:
    """Ground-truth mask of a toy object given as in ``Sample.metadata["objects"]``."""
    from anyref_ros.data.toy_render import ToyObject, object_mask

    fields = {k: obj[k] for k in ("shape", "colour", "rgb", "x0", "y0", "size")}
    return object_mask(ToyObject(**fields), size)


def camera_info(header, width: int, height: int):
    """CameraInfo of the toy camera model for a ``width`` x ``height`` frame."""
    from sensor_msgs.msg import CameraInfo

    from anyref_ros.data.toy_direction import camera_for

    fx, fy, cx, cy, _, _ = camera_for((width, height))
    return CameraInfo(header=header, width=width, height=height, k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])


# -------------------------------------------------------------- the demo run
class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        from anyref_ros.nodes.common import ToolNode

        self.args = args
        self.out = Path(args.out).resolve()
        (self.out / "answers").mkdir(parents=True, exist_ok=True)
        self.answers: list[Answer] = []
        self.ros = ToolNode("anyref_demo", threads=4)
        self.node = self.ros.node
        self.proc: Optional[subprocess.Popen] = None
        self.speech_proc: Optional[subprocess.Popen] = None

    # ---- node process
    def start_node(self) -> None:
        exe = Path(sys.executable).with_name("anyref_node")
        cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "anyref_ros.nodes.anyref"]),
               "--ros-args", "--params-file", str(ros_env.shared_file("config/anyref.yaml")),
               "-r", f"__ns:={NAMESPACE}", "-p", f"checkpoint:={self.args.checkpoint}",
               "-p", f"device:={self.args.device}", "-p", "max_frame_age_s:=0.0", "-p", "target_frame:=base_link",
               "-p", f"mic_positions:={MIC_POSITIONS}"]
        log = open(self.out / "node.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        print(f"[demo] started anyref_node (log: {self.out / 'node.log'})", flush=True)

    def wait_active(self, timeout: float) -> None:
        from anyref_ros.srv import Segment

        self.segment = self.node.create_client(Segment, f"{NAMESPACE}/anyref/segment")
        deadline = time.monotonic() + timeout
        if not self.segment.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f"anyref_node did not come up; see {self.out / 'node.log'}")
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"anyref_node exited; see {self.out / 'node.log'}")
            r = self.call(self.segment, Segment.Request(text="ping"))
            if r is not None and "not active" not in r.message and not r.message.startswith("loading the model"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"anyref_node did not activate within {timeout:.0f} s; see {self.out / 'node.log'}")

    def call(self, client, request, timeout: float = 300.0):
        future = client.call_async(request)
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        return future.result() if done.wait(timeout) else None

    # ---- toy scenes
    def run_toy(self) -> None:
        from anyref_ros.nodes.conversions import image_to_mask, numpy_to_audio, numpy_to_image
        from anyref_ros.data.toy import ToyWorld
        from anyref_ros.msg import Referral
        from anyref_ros.srv import DescribeRegion, Segment
        from std_msgs.msg import String

        camera = Camera(self.node, f"{NAMESPACE}/image")
        results: list[Referral] = []
        self.node.create_subscription(Referral, f"{NAMESPACE}/anyref/results", results.append, 10)
        query_pub = self.node.create_publisher(String, f"{NAMESPACE}/query", 10)
        describe = self.node.create_client(DescribeRegion, f"{NAMESPACE}/anyref/describe_region")
        world = ToyWorld(DEMO_SEED, size=SIZE)
        index = 0
        paths: list[tuple[str, str]] = [("segment_text", "text"), ("query_topic", "text"), ("segment_exemplar", "exemplar"),
                                        ("segment_sound", "audio"), ("describe_region", "region")]
        # once, on the first text scene: a colour and shape that is not in it
        first = [paths[0], ("segment_absent", "absent"), *paths[1:]]
        try:
            for k in range(self.args.scenes):
                for path, task in first if k == 0 else paths:
                    if task == "absent":  # same frame as the text query before it, nothing to find
                        sample = dataclasses.replace(sample, query=absent_pair(sample.metadata["objects"]),
                                                     description=None, masks=[])
                    else:
                        sample = world.sample(index, task)
                        index += 1
                        camera.show(sample.image)
                        self._wait_frames(camera)
                    stamps = set(camera.stamps())
                    answer = Answer(scene=index - 1, path=path, query=sample.query or "", expected=sample.description)
                    t = time.monotonic()
                    if path == "query_topic":
                        before = len(results)
                        query_pub.publish(String(data=sample.query))
                        msg = self._wait_result(results, before, sample.query)
                        ok, message = msg is not None, ("ok" if msg is not None else "no answer on ~/results")
                    elif path == "describe_region":
                        x0, y0, x1, y1 = sample.box
                        r = self.call(describe, DescribeRegion.Request(x_min=x0, y_min=y0, x_max=x1, y_max=y1))
                        ok, message, msg = (r.success, r.message, r.result) if r else (False, "no response", None)
                        answer.query = f"box {list(sample.box)}"
                    else:
                        req = Segment.Request()
                        if task in ("text", "absent"):
                            req.text = sample.query
                        elif task == "exemplar":
                            req.exemplar = numpy_to_image(sample.exemplar, "rgb8")
                            answer.query = "exemplar image"
                        else:
                            req.audio = numpy_to_audio(sample.audio, sample.sample_rate, "s16le")
                            answer.query = "sound"
                        r = self.call(self.segment, req)
                        ok, message, msg = (r.success, r.message, r.result) if r else (False, "no response", None)
                    answer.success, answer.message = ok, message
                    if msg is not None and ok:
                        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
                        if stamp not in stamps and stamp not in set(camera.stamps()):
                            answer.message = "answered on another scene's frame"
                        mask = image_to_mask(msg.mask)
                        answer.description = msg.description
                        answer.found, answer.score = bool(msg.found), float(msg.score)
                        answer.latency_ms = float(msg.latency_ms)
                        answer.iou = iou(mask, sample.mask)
                        answer.box = [msg.x_min, msg.y_min, msg.x_max, msg.y_max] if msg.has_box else None
                        self._picture(answer, sample.image, mask, sample.mask, sample.exemplar if task == "exemplar" else None)
                    else:
                        answer.latency_ms = (time.monotonic() - t) * 1000.0
                    self._report(answer)
        finally:
            camera.close()

    def _wait_frames(self, camera: Camera, frames: int = 3, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(camera.stamps()) < frames and time.monotonic() < deadline:
            time.sleep(0.02)

    @staticmethod
    def _wait_result(results: list, before: int, query: str, timeout: float = 300.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in results[before:]:
                if msg.query == query:
                    return msg
            time.sleep(0.02)
        return None

    # ---- hearing: a sound event and a spoken query
    def run_hearing(self) -> None:
        """The robot hears: a shape's sound in a quiet room is localised unasked
        (``~/sound_sources``), and a spoken sentence becomes a query through
        ``anyref_speech`` (espeak-ng speaks it; the demo plays it on ``audio``
        at real-time pace, as ``anyref_mic`` would from a microphone)."""
        from anyref_ros.data.toy import ToyWorld
        from anyref_ros.data.toy_audio import LAYOUTS, SAMPLE_RATE, room_noise, shape_sound
        from anyref_ros.data.toy_direction import camera_for, heard_from, point_of
        from anyref_ros.msg import Referral
        from anyref_ros.tools.demo_direction import publish_array_pose

        world = ToyWorld(DEMO_SEED + 1, size=SIZE)
        publish_array_pose(self.node)
        camera = Camera(self.node, f"{NAMESPACE}/image", info_topic=f"{NAMESPACE}/camera_info")
        player = AudioPlayer(self.node, f"{NAMESPACE}/audio")
        sources: list[Referral] = []
        results: list[Referral] = []
        self.node.create_subscription(Referral, f"{NAMESPACE}/anyref/sound_sources", sources.append, 10)
        self.node.create_subscription(Referral, f"{NAMESPACE}/anyref/results", results.append, 10)
        self.start_speech(player)
        rng = np.random.default_rng(DEMO_SEED)
        quiet = dataclasses.replace(LAYOUTS["train"], hum_prob=0.0, room_rms=(0.003, 0.003))
        try:
            for k in range(self.args.scenes):
                sample = world.sample(k, "audio")
                camera.show(sample.image)
                self._wait_frames(camera)
                shape = sample.description
                clip = np.concatenate([room_noise(rng, int(1.5 * SAMPLE_RATE), SAMPLE_RATE, quiet)[0],
                                       shape_sound(rng, shape, 1.5, SAMPLE_RATE),
                                       room_noise(rng, int(2.5 * SAMPLE_RATE), SAMPLE_RATE, quiet)[0]])
                clip = heard_from(rng, clip, point_of(sample.mask, camera_for(SIZE), 1.5))  # the array hears it
                answer = Answer(scene=k, path="sound_event", query=f"{shape} sound, heard", expected=shape)
                before = len(sources)
                t = time.monotonic()
                player.play(clip, SAMPLE_RATE)
                msg = self._wait_new(sources, before, timeout=SOUND_EVENT_WAIT_S)
                self._hearing_answer(answer, msg, sample.image, sample.mask, t, camera,
                                     f"no ~/sound_sources answer within {SOUND_EVENT_WAIT_S:.0f} s "
                                     "of the sound's end")
            self._spoken_query(world, camera, player, results)
        finally:
            player.close()
            camera.close()

    def _spoken_query(self, world, camera, player, results) -> None:
        import shutil

        import soundfile

        from anyref_ros.data.toy_direction import heard_from

        sentence, colour, shape = "find the red circle", "red", "circle"
        answer = Answer(scene=0, path="spoken_query", query=f"spoken: {sentence!r}", expected=f"{colour} {shape}")
        sample = next(s for s in (world.sample(i, "text") for i in range(200))
                      if sum(o["colour"] == colour and o["shape"] == shape for o in s.metadata["objects"]) == 1)
        truth = next(o for o in sample.metadata["objects"] if o["colour"] == colour and o["shape"] == shape)
        gt = object_mask_of(truth, SIZE)
        if shutil.which("espeak-ng") is None:
            answer.message = "espeak-ng is not installed (make setup installs it)"
            self._report(answer)
            return
        wav = self.out / "spoken_query.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), sentence], check=True, capture_output=True)
        speech, rate = soundfile.read(str(wav), dtype="float32")
        silence = np.zeros(int(0.6 * rate), np.float32)
        camera.show(sample.image)
        self._wait_frames(camera)
        before = len(results)
        t = time.monotonic()
        said = np.concatenate([silence, speech, silence, silence])
        player.play(heard_from(np.random.default_rng(0), said, np.array([0.0, 0.0, 1.0]), sample_rate=rate), rate)
        msg = self._wait_new(results, before, timeout=20.0, accept=lambda m: m.reference_type == "text")
        self._hearing_answer(answer, msg, sample.image, gt, t, camera, "no answer on ~/results within 20 s")
        if msg is not None:
            answer.query = f"spoken: heard {msg.query!r}"

    def _hearing_answer(self, answer, msg, image, gt, t, camera, missing: str) -> None:
        from anyref_ros.nodes.conversions import image_to_mask

        if msg is None:
            answer.message = missing
            answer.latency_ms = (time.monotonic() - t) * 1000.0
        else:
            mask = image_to_mask(msg.mask)
            answer.success, answer.message = True, "ok"
            answer.description, answer.score = msg.description, float(msg.score)
            answer.found = bool(msg.found)
            answer.latency_ms = float(msg.latency_ms)
            answer.iou = iou(mask, gt)
            answer.box = [msg.x_min, msg.y_min, msg.x_max, msg.y_max] if msg.has_box else None
            self._picture(answer, image, mask, gt, None)
        self._report(answer)

    @staticmethod
    def _wait_new(messages: list, before: int, timeout: float, accept=lambda _m: True):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in messages[before:]:
                if accept(msg):
                    return msg
            time.sleep(0.02)
        return None

    def start_speech(self, player: "AudioPlayer", timeout: float = 60.0) -> None:
        exe = Path(sys.executable).with_name("anyref_speech")
        cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "anyref_ros.nodes.speech"]),
               "--ros-args", "--params-file", str(ros_env.shared_file("config/speech.yaml")),
               "-r", f"__ns:={NAMESPACE}"]
        log = open(self.out / "speech.log", "w")
        self.speech_proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        print(f"[demo] started anyref_speech (log: {self.out / 'speech.log'})", flush=True)
        deadline = time.monotonic() + timeout  # audio played before it listens would be missed
        while player.subscribers() < 2 and time.monotonic() < deadline and self.speech_proc.poll() is None:
            time.sleep(0.1)
        time.sleep(1.0)  # its VAD and recogniser finish loading when it activates

    # ---- bag playback
    def run_bag(self) -> None:
        from anyref_ros.nodes.conversions import image_to_mask
        from anyref_ros.msg import Referral
        from anyref_ros.srv import Segment
        from rclpy.qos import qos_profile_sensor_data
        from rclpy.serialization import deserialize_message
        from sensor_msgs.msg import CompressedImage, Image

        topic, queries = self.args.image_topic, self.args.query or []
        if not queries:
            raise SystemExit("--bag needs at least one --query TEXT to ask on its frames")
        frames = list(read_bag_frames(Path(self.args.bag), topic))
        if not frames:
            raise SystemExit(f"{self.args.bag}: no messages on {topic}")
        compressed = frames[0][1] == "sensor_msgs/msg/CompressedImage"
        msg_type = CompressedImage if compressed else Image
        pub = self.node.create_publisher(msg_type, f"{NAMESPACE}/image", qos_profile_sensor_data)
        latest: dict[str, object] = {}

        def play(stop: threading.Event) -> None:
            start, t0 = time.monotonic(), frames[0][0]
            while not stop.is_set():
                for stamp_ns, _type, raw in frames:
                    if stop.is_set():
                        return
                    delay = (stamp_ns - t0) * 1e-9 - (time.monotonic() - start)
                    if delay > 0:
                        time.sleep(delay)
                    msg = deserialize_message(raw, msg_type)
                    latest["msg"] = msg
                    pub.publish(msg)
                start, t0 = time.monotonic(), frames[0][0]

        player = Worker("demo-bag", play, report=self.node.get_logger().warning)
        player.start()
        time.sleep(1.0)
        try:
            for i, text in enumerate(queries):
                r = self.call(self.segment, Segment.Request(text=text))
                answer = Answer(scene=i, path="bag", query=text, expected=None)
                if r is None:
                    answer.message = "no response"
                else:
                    answer.success, answer.message = r.success, r.message
                    if r.success:
                        answer.description, answer.score = r.result.description, float(r.result.score)
                        answer.found = bool(r.result.found)
                        answer.latency_ms = float(r.result.latency_ms)
                        mask = image_to_mask(r.result.mask)
                        rgb = frame_rgb(latest.get("msg"), mask.shape)
                        self._picture(answer, rgb, mask, None, None)
                self._report(answer)
        finally:
            player.stop()

    # ---- outputs
    def _picture(self, answer: Answer, rgb: np.ndarray, mask: np.ndarray, gt: Optional[np.ndarray],
                 exemplar: Optional[np.ndarray], draw=None) -> None:
        """Save the answer's picture; ``draw(picture)`` adds to it last."""
        import cv2
        from PIL import Image as PILImage

        from anyref_ros.drawing import SEPARATOR, draw_referral

        facts = [answer.path] + ([] if answer.iou is None else [f"IoU {answer.iou:.2f}"]) + [f"{answer.latency_ms:.0f} ms"]
        lines = [f"answer: {answer.description}", SEPARATOR.join(facts)]
        picture = draw_referral(rgb, mask, answer.box, lines, found=answer.found, score=answer.score,
                                label=answer.query)
        if gt is not None and gt.any():
            contours, _ = cv2.findContours(gt.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(picture, contours, -1, GT_COLOUR, 1)
        if exemplar is not None:
            h = picture.shape[0] // 4
            thumb = cv2.resize(exemplar, (max(1, exemplar.shape[1] * h // exemplar.shape[0]), h), interpolation=cv2.INTER_NEAREST)
            picture[-h:, -thumb.shape[1]:] = thumb
        if draw is not None:
            draw(picture)
        name = f"{len(self.answers):03d}_{answer.path}.png"
        PILImage.fromarray(picture).save(self.out / "answers" / name)
        answer.picture = f"answers/{name}"

    def _report(self, answer: Answer) -> None:
        self.answers.append(answer)
        iou_text = "" if answer.iou is None else f" IoU {answer.iou:.2f}"
        iou_text += " (not found)" if answer.found is False else ""
        state = "ok" if answer.success else f"FAILED: {answer.message}"
        print(f"[demo] {answer.path:17s} {answer.query[:32]!r:34s} -> {answer.description!r}{iou_text} "
              f"{answer.latency_ms:.0f} ms {state}", flush=True)

    def write_summary(self) -> Path:
        pictures = [self.out / a.picture for a in self.answers if a.picture]
        sheet = self.out / "contact_sheet.png"
        if pictures:
            contact_sheet(pictures, sheet)
        by_path: dict[str, list[float]] = {}
        for a in self.answers:
            if a.iou is not None:
                by_path.setdefault(a.path, []).append(a.iou)
        summary = {
            "checkpoint": self.args.checkpoint,
            "device": self.args.device,
            "queries": len(self.answers),
            "succeeded": sum(a.success for a in self.answers),
            "not_found": [a.query for a in self.answers if a.found is False],
            "mean_iou": {p: round(float(np.mean(v)), 4) for p, v in by_path.items()},
            "median_latency_ms": round(float(np.median([a.latency_ms for a in self.answers])), 1) if self.answers else None,
            "answers": [asdict(a) for a in self.answers],
        }
        path = self.out / "summary.json"
        path.write_text(json.dumps(summary, indent=2))
        return path

    def close(self) -> None:
        from anyref_ros.nodes.common import stop_processes

        stop_processes([self.speech_proc, self.proc])
        self.ros.close()


# ------------------------------------------------------------------ helpers
def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def contact_sheet(pictures: list[Path], path: Path, columns: int = 5, width: int = 320) -> None:
    """All pictures, scaled to ``width`` px, in a grid."""
    from PIL import Image as PILImage

    thumbs = []
    for p in pictures:
        im = PILImage.open(p).convert("RGB")
        thumbs.append(im.resize((width, max(1, im.height * width // im.width))))
    height = max(t.height for t in thumbs)
    rows = (len(thumbs) + columns - 1) // columns
    sheet = PILImage.new("RGB", (columns * width, rows * height), (24, 24, 24))
    for i, t in enumerate(thumbs):
        sheet.paste(t, ((i % columns) * width, (i // columns) * height))
    sheet.save(path)


def read_bag_frames(path: Path, topic: str) -> Iterator[tuple[int, str, bytes]]:
    """(timestamp ns, message type, CDR bytes) of ``topic`` in a rosbag2 (MCAP or sqlite3)."""
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            topics = sorted({c.topic for c in reader.connections})
            raise SystemExit(f"{path}: no topic {topic}; it has {', '.join(topics)}")
        for conn, stamp, raw in reader.messages(connections=connections):
            yield stamp, conn.msgtype, bytes(raw)


def frame_rgb(msg, shape: tuple[int, int]) -> np.ndarray:
    from sensor_msgs.msg import CompressedImage

    from anyref_ros.nodes.conversions import compressed_to_rgb, image_to_rgb

    if msg is None:
        return np.zeros((*shape, 3), np.uint8)
    return compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)


class ResultRecorder:
    """Writes every ``~/results`` message into a new rosbag2 (MCAP)."""

    def __init__(self, node, path: Path) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        from anyref_ros.msg import Referral

        store = get_typestore(Stores.ROS2_JAZZY)
        store.register(get_types_from_msg(ros_env.shared_file("msg/Referral.msg").read_text(), "anyref_ros/msg/Referral"))
        if path.exists():
            raise SystemExit(f"--record: {path} exists; choose a new folder")
        self._writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._conn = self._writer.add_connection(f"{NAMESPACE}/anyref/results", "anyref_ros/msg/Referral", typestore=store)
        self._lock = threading.Lock()
        self.count = 0
        node.create_subscription(Referral, f"{NAMESPACE}/anyref/results", self._on_result, 10)

    def _on_result(self, msg) -> None:
        from rclpy.serialization import serialize_message

        with self._lock:
            self._writer.write(self._conn, time.time_ns(), serialize_message(msg))
            self.count += 1

    def wait(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` answers are recorded (the last reply can come before its
        ~/results message), at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.count < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        with self._lock:
            self._writer.close()


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="anyref-demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="model/toy", help="checkpoint folder or preset (default: model/toy)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--scenes", type=int, default=3, help="scenes per query path (default 3)")
    ap.add_argument("--out", default="demo_output", help="output folder (default ./demo_output)")
    ap.add_argument("--bag", help="play this rosbag2 (MCAP or sqlite3) as the camera instead of toy scenes")
    ap.add_argument("--image-topic", default="/camera/image_raw", help="image topic in --bag")
    ap.add_argument("--query", action="append", help="a text query to ask on the bag's frames (repeatable)")
    ap.add_argument("--record", help="write the node's answers into a new rosbag2 (MCAP) folder")
    ap.add_argument("--no-hearing", action="store_true",
                    help="skip the sound events, the spoken query and the sound directions")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the node to load")
    return ap.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    ros_env.configure_private_graph()
    demo = Demo(args)
    recorder = None
    try:
        if args.record:
            recorder = ResultRecorder(demo.node, Path(args.record))
        demo.start_node()
        demo.wait_active(args.timeout)
        if args.bag:
            demo.run_bag()
        else:
            demo.run_toy()
            from anyref_ros.tools.demo_grasp import run_grasp
            from anyref_ros.tools.demo_watch import run_watch

            run_grasp(demo, NAMESPACE)
            run_watch(demo, NAMESPACE)
            if not args.no_hearing:
                from anyref_ros.tools.demo_direction import run_direction

                demo.run_hearing()
                run_direction(demo, NAMESPACE)
    except (RuntimeError, KeyboardInterrupt) as exc:
        print(f"[demo] stopped: {exc}", file=sys.stderr)
        return 1
    finally:
        summary = demo.write_summary()
        if recorder is not None:
            recorder.wait(sum(a.success and a.path != "sound_event" for a in demo.answers))
            recorder.close()
            print(f"[demo] recorded {recorder.count} answers into {args.record}")
        demo.close()
    ok = sum(a.success for a in demo.answers)
    print(f"[demo] {ok}/{len(demo.answers)} queries answered; pictures in {demo.out / 'answers'}, "
          f"contact sheet {demo.out / 'contact_sheet.png'}, summary {summary}", flush=True)
    return 0 if ok == len(demo.answers) and demo.answers else 1


if __name__ == "__main__":
    sys.exit(main())
