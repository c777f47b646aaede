"""Camera input of the anyref node: frames, depth and camera info (audio: :mod:`.hearing`).

Callbacks only check and store (no model work, no waiting):

* camera: the latest frame, plus a short history (:data:`FRAME_HISTORY`
  frames at least :data:`HISTORY_SPACING_S` apart, about 1 s) that sound
  events pick their frame from. A frame is decoded at most once, by the first
  query that uses it (compressed ones with the pixel limit checked before
  decoding). Memory: the history holds up to FRAME_HISTORY + 1 received
  messages (640x480 rgb8: 10 MB; 1920x1080 rgb8: 68 MB; compressed: a few
  hundred KB);
* depth: the last :data:`DEPTH_FRAMES` images, matched to a frame by stamp;
  an image above ``max_image_pixels`` (or with more than 8 bytes a pixel of
  that limit) is dropped before it is stored (``depth_rejected``);
* camera info: the latest one with finite, positive fx, fy and finite cx, cy,
  of the colour camera (``camera_info``) and of the depth camera
  (``depth/camera_info``, for a depth image of another size than the
  colour image; without it, ``camera_info`` describes the depth image).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from anyref_ros.geometry import StampBuffer
from anyref_ros.nodes import conversions as conv

from .support import QueryError, Recent, guarded, stamp_seconds

FRAME_HISTORY = 10
HISTORY_SPACING_S = 0.1
DEPTH_FRAMES = 10


@dataclass
class CameraFrame:
    """A received camera message; decoded (once) when a query uses it."""

    msg: Any  # sensor_msgs/Image or CompressedImage
    received: float  # node clock, seconds
    key: int
    used: bool = False
    _rgb: Optional[np.ndarray] = None
    _error: Optional[str] = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def header(self):
        return self.msg.header

    @property
    def stamp(self) -> float:
        """Header stamp in seconds, or the receive time when the stamp is zero."""
        return stamp_seconds(self.msg.header) or self.received

    def rgb(self, max_pixels: int) -> np.ndarray:
        """(H, W, 3) uint8, decoded on first use; raises QueryError."""
        with self._lock:
            if self._rgb is None and self._error is None:
                try:
                    self._rgb = decode_frame(self.msg, max_pixels)
                except ValueError as exc:
                    self._error = str(exc)
            if self._error is not None:
                raise QueryError(f"camera frame: {self._error}")
            rgb = self._rgb
        check_pixels(rgb.shape[1], rgb.shape[0], max_pixels, "camera frame")
        return rgb


def frame_age(frame: CameraFrame, now: float) -> float:
    """Seconds since the node received ``frame``: the one freshness rule, for
    queries and /diagnostics alike. Receive time, not the header stamp: a
    camera whose clock lags or runs ahead is judged by when its frames arrive
    (the lag itself is reported as camera_delay_ms)."""
    return now - frame.received


def check_pixels(width: int, height: int, limit: int, what: str) -> None:
    if width * height > limit:
        raise QueryError(f"{what} is {width}x{height} = {width * height} pixels, above max_image_pixels={limit}")


def decode_frame(msg, max_pixels: int) -> np.ndarray:
    """RGB of an Image or CompressedImage; the pixel count is checked before decoding."""
    if isinstance(msg, CompressedImage):
        return conv.compressed_to_rgb(msg, max_pixels=max_pixels)
    check_pixels(msg.width, msg.height, max_pixels, "image")
    return conv.image_to_rgb(msg)


def valid_camera_info(msg: CameraInfo) -> Optional[str]:
    """Why ``msg`` cannot give 3D positions, or None when it can."""
    k = list(msg.k)
    if len(k) != 9 or not all(math.isfinite(v) for v in k):
        return "its camera matrix K holds NaN or infinity"
    if k[0] <= 0 or k[4] <= 0:
        return f"fx={k[0]:g}, fy={k[4]:g}: both must be > 0"
    if msg.width == 0 or msg.height == 0:
        return f"its size is {msg.width}x{msg.height}"
    return None


class Intake:
    """Subscriptions and stored sensor state (see the module docstring)."""

    def __init__(self, node, on_frame: Callable, on_depth: Callable) -> None:
        self.node = node
        self.log = node.throttle
        self.stats = node.stats
        self._on_frame = on_frame  # (CameraFrame) -> None, from the image callback
        self._on_depth = on_depth  # (Image) -> None, from the depth callback
        self._lock = threading.Lock()
        self.subs: list = []
        self.image_topic = "image"
        self.latest: Optional[CameraFrame] = None
        self._history: deque[CameraFrame] = deque(maxlen=FRAME_HISTORY)
        self._counter = 0
        self.depth = StampBuffer[Image](DEPTH_FRAMES)
        self.camera_info: Optional[CameraInfo] = None
        self.depth_info: Optional[CameraInfo] = None
        self.callback_ms = Recent()  # duration of the image callback
        self.delay_ms = Recent()  # receive time - header stamp

    # ------------------------------------------------------------- lifecycle
    def subscribe(self, group) -> None:
        p, node = self.node.param, self.node
        reliable = p("image_qos") == "reliable"
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if reliable else qos_profile_sensor_data
        kind, topic = (CompressedImage, "image/compressed") if p("use_compressed") else (Image, "image")
        self.subs = [
            node.create_subscription(kind, topic, self.on_image, qos, callback_group=group),
            node.create_subscription(Image, "depth", self.on_depth, qos, callback_group=group),
            node.create_subscription(CameraInfo, "camera_info", self.on_camera_info, qos, callback_group=group),
            node.create_subscription(CameraInfo, "depth/camera_info", self.on_depth_info, qos, callback_group=group),
        ]
        self.image_topic = self.subs[0].topic_name

    def unsubscribe(self) -> None:
        for sub in self.subs:
            self.node.destroy_subscription(sub)
        self.subs = []
        self.clear()

    def clear(self) -> None:
        """Forget every stored frame, depth image and camera info."""
        with self._lock:
            self.latest = None
            self._history.clear()
            self.depth = StampBuffer[Image](DEPTH_FRAMES)
            self.camera_info = None
            self.depth_info = None

    # ---------------------------------------------------------------- camera
    @guarded("image")
    def on_image(self, msg) -> None:
        t = time.perf_counter()
        self._store(msg)
        self.callback_ms.add((time.perf_counter() - t) * 1000.0)

    def _store(self, msg) -> None:
        with self._lock:
            if self.latest is not None and not self.latest.used:
                self.stats.inc("frames_dropped")
            self._counter += 1
            frame = CameraFrame(msg=msg, received=self.node.now(), key=self._counter)
            if not self._history or frame.stamp - self._history[-1].stamp >= HISTORY_SPACING_S \
                    or frame.stamp < self._history[-1].stamp:
                self._history.append(frame)
            self.latest = frame
        self.stats.inc("frames_received")
        if stamp_seconds(msg.header):
            self.delay_ms.add((frame.received - frame.stamp) * 1000.0)
        self._on_frame(frame)

    def latest_frame(self) -> CameraFrame:
        """The latest frame, fresh enough (``max_frame_age_s``); raises QueryError."""
        with self._lock:
            frame = self.latest
            if frame is not None:
                frame.used = True
        if frame is None:
            raise QueryError(f"no camera frame has arrived yet on {self.image_topic}; check the camera driver, "
                             "the topic remapping and image_qos (sensor_data vs reliable)")
        max_age = self.node.param("max_frame_age_s")
        age = frame_age(frame, self.node.now())
        if max_age > 0 and age > max_age:
            raise QueryError(f"no camera frame newer than {max_age:g} s on {self.image_topic} (the latest "
                             f"arrived {age:.2f} s ago; max_frame_age_s={max_age:g}); "
                             "is the camera still publishing?")
        return frame

    def frame_near(self, t: float) -> Optional[CameraFrame]:
        """The stored frame whose stamp is closest to ``t`` (seconds)."""
        with self._lock:
            frames = list(self._history) + ([self.latest] if self.latest is not None else [])
        return min(frames, key=lambda f: abs(f.stamp - t), default=None)

    @guarded("depth")
    def on_depth(self, msg: Image) -> None:
        limit = self.node.param("max_image_pixels")
        if msg.width * msg.height > limit or len(msg.data) > 8 * limit:
            self.stats.inc("depth_rejected")
            self.log("warning", "depth", f"ignoring a depth image of {msg.width}x{msg.height} pixels, "
                                         f"{len(msg.data)} bytes: above max_image_pixels={limit}")
            return
        self.depth.add(stamp_seconds(msg.header), msg)
        self._on_depth(msg)

    @guarded("camera_info")
    def on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = self._checked_info(msg, "camera_info")

    @guarded("depth_info")
    def on_depth_info(self, msg: CameraInfo) -> None:
        self.depth_info = self._checked_info(msg, "depth/camera_info")

    def _checked_info(self, msg: CameraInfo, topic: str) -> Optional[CameraInfo]:
        problem = valid_camera_info(msg)
        if problem is None:
            return msg
        self.stats.inc("camera_info_rejected")
        self.log("warning", topic, f"ignoring {topic}: {problem}; no 3D positions until a valid one arrives")
        return None
