"""anyref_node: the ROS 2 lifecycle node ``anyref``.

Camera frames, depth, audio and queries in; masks, descriptions, 3D positions,
debug pictures and diagnostics out. A thin adapter: messages are converted
(:mod:`anyref_ros.nodes.conversions`), queries run on the :class:`~anyref_ros.engine.Engine`
(one worker, bounded queue, per-frame cache), answers are converted back.

Threading: sensor callbacks (image, depth, camera info, audio) only store the
latest message and never wait; queries (services, action, query topic) run
in a reentrant callback group on a multi-threaded executor and wait for the
engine, so they can all be used at the same time.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, NoReturn, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PointStamped
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from anyref_ros.nodes import conversions as conv
from anyref_ros.nodes.common import declare_parameters, run_node
from anyref_ros import engine as eng
from anyref_ros import ros_env
from anyref_ros.action import Refer
from anyref_ros.drawing import draw_referral
from anyref_ros.geometry import Intrinsics, StampBuffer, mask_position
from anyref_ros.msg import AudioChunk, Referral
from anyref_ros.parameters import BY_NAME, PARAMS
from anyref_ros.srv import DescribeRegion, Segment

NODE_NAME = "anyref"


class QueryError(ValueError):
    """A query the node refuses; the message goes back to the caller."""


@dataclass
class CameraFrame:
    """The latest camera message, decoded only when a query uses it."""

    msg: Any  # sensor_msgs/Image or CompressedImage
    received: float  # node clock, seconds
    key: int
    used: bool = False  # a query ran on it (else it counts as dropped when replaced)


def _stamp_seconds(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class AnyRefNode(LifecycleNode):
    """The ``anyref`` node (see the module docstring and the README)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_parameters(self, PARAMS)
        self._sensor_group = MutuallyExclusiveCallbackGroup()
        self._query_group = ReentrantCallbackGroup()
        self._lock = threading.Lock()
        self._engine: Optional[eng.Engine] = None
        self._device = "none"
        self._latest: Optional[CameraFrame] = None
        self._frame_counter = 0
        self._depth = StampBuffer[Image](10)
        self._camera_info: Optional[CameraInfo] = None
        self._audio: deque[np.ndarray] = deque()
        self._audio_rate = 0
        self._counts = {"frames_received": 0, "frames_dropped": 0, "queries_ok": 0, "queries_failed": 0,
                        "queries_refused": 0}
        self._subs: list = []
        self._pubs: dict[str, Any] = {}
        self._goals: dict[int, Any] = {}  # id(goal request) -> (job, header, kind) or the QueryError
        self._warned_no_frames = False
        self._started = time.monotonic()

        # Queries are always served; while inactive they answer "not active".
        self.create_service(Segment, "~/segment", self._on_segment, callback_group=self._query_group)
        self.create_service(DescribeRegion, "~/describe_region", self._on_describe, callback_group=self._query_group)
        self.create_service(Trigger, "~/segment_sound", self._on_segment_sound, callback_group=self._query_group)
        self._action = ActionServer(
            self, Refer, "~/refer", execute_callback=self._execute_refer, goal_callback=self._on_goal,
            cancel_callback=lambda _goal: CancelResponse.ACCEPT, callback_group=self._query_group)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=self._sensor_group)

    def param(self, name: str):
        return self.get_parameter(name).value

    # ------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        for name in ("dtype", "image_qos"):
            if self.param(name) not in BY_NAME[name].choices:
                self.get_logger().error(f"parameter {name}={self.param(name)!r}: expected one of {BY_NAME[name].choices}")
                return TransitionCallbackReturn.FAILURE
        reliable = self.param("image_qos") == "reliable"
        image_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE) if reliable else qos_profile_sensor_data
        g = self._sensor_group
        if self.param("use_compressed"):
            self._subs.append(self.create_subscription(CompressedImage, "image/compressed", self._on_image, image_qos, callback_group=g))
        else:
            self._subs.append(self.create_subscription(Image, "image", self._on_image, image_qos, callback_group=g))
        self._subs += [
            self.create_subscription(Image, "depth", self._on_depth, image_qos, callback_group=g),
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, image_qos, callback_group=g),
            self.create_subscription(AudioChunk, "audio", self._on_audio, qos_profile_sensor_data, callback_group=g),
            self.create_subscription(String, "query", self._on_query, 10, callback_group=self._query_group),
        ]
        self._pubs = {
            "results": self.create_lifecycle_publisher(Referral, "~/results", 10),
            "mask": self.create_lifecycle_publisher(Image, "~/mask", 10),
            "debug_image": self.create_lifecycle_publisher(Image, "~/debug_image", 10),
            "markers": self.create_lifecycle_publisher(MarkerArray, "~/markers", 10),
        }
        self.get_logger().info(
            f"configured: listening on {self._subs[0].topic_name} ({self.param('image_qos')} QoS), "
            f"{self._subs[1].topic_name}, {self._subs[3].topic_name}, {self._subs[4].topic_name}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        from anyref_ros.model import AnyRefPipeline

        checkpoint = self.param("checkpoint")
        try:
            source = resolve_checkpoint(checkpoint)
            device = None if self.param("device") == "auto" else self.param("device")
            dtype = None if self.param("dtype") == "auto" else self.param("dtype")
            t = time.monotonic()
            pipeline = AnyRefPipeline.from_pretrained(source, device=device, dtype=dtype)
        except Exception as exc:  # the node stays up, inactive, and says why
            self.get_logger().error(f"cannot load checkpoint {checkpoint!r}: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._device = str(pipeline.model.device)
        self._engine = eng.Engine(pipeline, max_queue=self.param("max_queue"), cache_frames=self.param("frame_cache"))
        self.get_logger().info(f"loaded {source} on {self._device} in {time.monotonic() - t:.1f} s")
        if self.param("warmup"):
            t = time.monotonic()
            try:
                self._engine.submit(eng.Request(frame=eng.Frame(np.zeros((64, 64, 3), np.uint8)), text="object")).result(600)
                self.get_logger().info(f"warm-up query took {time.monotonic() - t:.2f} s")
            except Exception as exc:
                self.get_logger().warning(f"warm-up query failed: {exc}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_model()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_model()
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._subs, self._pubs = [], {}
        with self._lock:
            self._latest = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_model()
        return TransitionCallbackReturn.SUCCESS

    def _release_model(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close(timeout=1.0)
            del engine
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except Exception:
                pass
        self._device = "none"

    @property
    def active(self) -> bool:
        return self._engine is not None and bool(self._pubs) and self._pubs["results"].is_activated

    # -------------------------------------------------------------- sensors
    def _on_image(self, msg) -> None:
        with self._lock:
            if self._latest is not None and not self._latest.used:
                self._counts["frames_dropped"] += 1
            self._frame_counter += 1
            self._counts["frames_received"] += 1
            self._latest = CameraFrame(msg=msg, received=self._now(), key=self._frame_counter)

    def _on_depth(self, msg: Image) -> None:
        self._depth.add(_stamp_seconds(msg.header), msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_audio(self, msg: AudioChunk) -> None:
        try:
            samples, rate = conv.audio_to_numpy(msg)
        except conv.ConversionError as exc:
            self.get_logger().warning(f"dropping audio chunk: {exc}", throttle_duration_sec=5.0)
            return
        mono = samples.mean(axis=1)
        with self._lock:
            if rate != self._audio_rate:
                self._audio.clear()
                self._audio_rate = rate
            self._audio.append(mono)
            keep = int(self.param("audio_window_s") * rate)
            while sum(len(a) for a in self._audio) - len(self._audio[0]) >= keep:
                self._audio.popleft()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ---------------------------------------------------------- query input
    def _scene(self, image_msg: Optional[Image]) -> tuple[eng.Frame, Header]:
        """The frame a query runs on: the request's image, or the latest camera frame."""
        if image_msg is not None and not conv.is_empty_image(image_msg):
            if image_msg.height == 0 or image_msg.width == 0:
                raise QueryError(f"image is {image_msg.width}x{image_msg.height}: a side is zero; "
                                 "send an empty image (0x0, no data) to use the latest camera frame")
            self._check_pixels(image_msg.width, image_msg.height, "image")
            return eng.Frame(image=self._rgb(image_msg, "image")), image_msg.header
        with self._lock:
            latest = self._latest
            if latest is not None:
                latest.used = True
        if latest is None:
            topic = self._subs[0].topic_name if self._subs else "image"
            raise QueryError(f"no camera frame has arrived yet on {topic}; check the camera driver, "
                             "the topic remapping and image_qos (sensor_data vs reliable)")
        header = latest.msg.header
        max_age = self.param("max_frame_age_s")
        stamp = _stamp_seconds(header) or latest.received
        age = self._now() - stamp
        if max_age > 0 and age > max_age:
            raise QueryError(f"the latest camera frame is {age:.2f} s old (max_frame_age_s={max_age:g}); "
                             "is the camera still publishing?")
        if isinstance(latest.msg, CompressedImage):
            try:
                rgb = conv.compressed_to_rgb(latest.msg)
            except conv.ConversionError as exc:
                raise QueryError(f"latest camera frame: {exc}") from None
            self._check_pixels(rgb.shape[1], rgb.shape[0], "camera frame")
        else:
            self._check_pixels(latest.msg.width, latest.msg.height, "camera frame")
            rgb = self._rgb(latest.msg, "camera frame")
        return eng.Frame(image=rgb, key=latest.key), header

    def _rgb(self, msg: Image, what: str) -> np.ndarray:
        try:
            return conv.image_to_rgb(msg)
        except conv.ConversionError as exc:
            raise QueryError(f"{what}: {exc}") from None

    def _check_pixels(self, width: int, height: int, what: str) -> None:
        limit = self.param("max_image_pixels")
        if width * height > limit:
            raise QueryError(f"{what} is {width}x{height} = {width * height} pixels, above max_image_pixels={limit}")

    def _check_text(self, text: str) -> Optional[str]:
        if not text:
            return None
        limit = self.param("max_text_chars")
        if len(text) > limit:
            raise QueryError(f"text is {len(text)} characters, above max_text_chars={limit}")
        if not text.strip():
            raise QueryError("text is only white space; send a referring expression such as 'the red cup'")
        return text

    def _segment_request(self, req) -> tuple[eng.Request, Header, str]:
        """An engine request from a Segment request or Refer goal (same fields)."""
        self._require_active()
        text = self._check_text(req.text)
        exemplar = exemplar_mask = audio = None
        rate = None
        if not conv.is_empty_image(req.exemplar):
            self._check_pixels(req.exemplar.width, req.exemplar.height, "exemplar")
            exemplar = self._rgb(req.exemplar, "exemplar")
            if not conv.is_empty_image(req.exemplar_mask):
                try:
                    exemplar_mask = conv.image_to_mask(req.exemplar_mask)
                except conv.ConversionError as exc:
                    raise QueryError(f"exemplar_mask: {exc}") from None
                if exemplar_mask.shape != exemplar.shape[:2]:
                    raise QueryError(f"exemplar_mask is {exemplar_mask.shape[1]}x{exemplar_mask.shape[0]} "
                                     f"but the exemplar is {exemplar.shape[1]}x{exemplar.shape[0]}")
        elif not conv.is_empty_image(req.exemplar_mask):
            raise QueryError("exemplar_mask given without an exemplar image")
        if len(req.audio.data) or req.audio.encoding:
            try:
                samples, rate = conv.audio_to_numpy(req.audio)
            except conv.ConversionError as exc:
                raise QueryError(f"audio: {exc}") from None
            audio = samples
        kinds = [k for k, v in (("text", text), ("exemplar", exemplar), ("audio", audio)) if v is not None]
        if not kinds:
            raise QueryError("no reference given: set text, exemplar (+ exemplar_mask) or audio")
        frame, header = self._scene(req.image)
        kind = kinds[0] if len(kinds) == 1 else Referral.TYPE_COMBINED
        return (eng.Request(frame=frame, text=text, exemplar=exemplar, exemplar_mask=exemplar_mask,
                            audio=audio, sample_rate=rate), header, kind)

    def _describe_request(self, req: DescribeRegion.Request) -> tuple[eng.Request, Header, str]:
        self._require_active()
        frame, header = self._scene(req.image)
        h, w = frame.image.shape[:2]
        x0, y0, x1, y1 = req.x_min, req.y_min, req.x_max, req.y_max
        if not (0 <= x0 <= x1 < w and 0 <= y0 <= y1 < h):
            raise QueryError(f"box ({x0}, {y0}, {x1}, {y1}) is not inside the {w}x{h} image: expected "
                             f"0 <= x_min <= x_max < {w} and 0 <= y_min <= y_max < {h} (inclusive pixels)")
        # ROS boxes are inclusive pixel indices; the model's are exclusive at the max side.
        return eng.Request(frame=frame, box=(x0, y0, x1 + 1, y1 + 1)), header, Referral.TYPE_REGION

    # ---------------------------------------------------------------- running
    def _require_active(self) -> eng.Engine:
        engine = self._engine
        if engine is None or not self.active:
            raise QueryError(f"the node is not active; activate it (ros2 lifecycle set {self.get_fully_qualified_name()} "
                             "activate) or check its log for why the model did not load")
        return engine

    def _submit(self, request: eng.Request, on_stage=None) -> eng.Job:
        engine = self._require_active()
        lam = self.param("refocus_lambda")
        request.refocus_lambda = None if lam < 0 else lam
        try:
            return engine.submit(request, on_stage=on_stage)
        except eng.QueueFull as exc:
            raise QueryError(f"busy: {exc}") from None
        except eng.EngineClosed:
            raise QueryError("the node is shutting down or deactivating") from None

    def _finish(self, job: eng.Job, header: Header, query: str, kind: str) -> Referral:
        """Turn a finished job into a Referral message and publish it."""
        ref = job.result(0)
        msg = Referral()
        msg.header = header
        msg.query = query
        msg.reference_type = kind
        # The answer template ends every answer with "."; the description drops it.
        msg.description = ref.text.strip().removesuffix(".").strip()
        msg.mask = conv.mask_to_image(ref.mask, header)
        msg.mask_area = int(ref.mask.sum())
        if ref.box is not None:
            msg.has_box = True
            msg.x_min, msg.y_min = int(ref.box[0]), int(ref.box[1])
            msg.x_max, msg.y_max = int(ref.box[2]) - 1, int(ref.box[3]) - 1
        msg.score = float(np.clip(ref.score, 0.0, 1.0))  # a predicted IoU; untrained heads can stray outside
        msg.latency_ms = float(job.latency * 1000.0)
        self._add_position(msg, ref.mask, header)
        self._publish(msg, job.request.frame.image, ref.mask)
        self._counts["queries_ok"] += 1
        return msg

    def _add_position(self, msg: Referral, mask: np.ndarray, header: Header) -> None:
        info = self._camera_info
        if info is None or not mask.any():
            return
        depth = self._depth.nearest(_stamp_seconds(header), self.param("depth_sync_slop_s"))
        if depth is None:
            return
        try:
            metres = conv.depth_to_metres(depth, self.param("depth_unit_mm"))
            xyz = mask_position(mask, metres, Intrinsics.from_k(info.k, info.width, info.height))
        except ValueError as exc:
            self.get_logger().warning(f"no 3D position: {exc}", throttle_duration_sec=5.0)
            return
        if xyz is None:
            return
        msg.has_position = True
        msg.position = PointStamped()
        msg.position.header.stamp = header.stamp
        msg.position.header.frame_id = info.header.frame_id or depth.header.frame_id or header.frame_id
        msg.position.point.x, msg.position.point.y, msg.position.point.z = (float(v) for v in xyz)

    def _publish(self, msg: Referral, rgb: np.ndarray, mask: np.ndarray) -> None:
        pubs = self._pubs
        if not pubs:
            return
        pubs["results"].publish(msg)
        pubs["mask"].publish(msg.mask)
        if self.param("publish_debug_image") and pubs["debug_image"].get_subscription_count() > 0:
            box = (msg.x_min, msg.y_min, msg.x_max, msg.y_max) if msg.has_box else None
            label = msg.query or msg.reference_type
            lines = [f"{label}: {msg.description}"[:80], f"score {msg.score:.2f}  {msg.latency_ms:.0f} ms"]
            pubs["debug_image"].publish(conv.numpy_to_image(draw_referral(rgb, mask, box, lines), "rgb8", msg.header))
        if msg.has_position:
            pubs["markers"].publish(self._markers(msg))

    def _markers(self, msg: Referral) -> MarkerArray:
        lifetime = self.param("marker_lifetime_s")
        out = MarkerArray()
        for i, kind in enumerate((Marker.SPHERE, Marker.TEXT_VIEW_FACING)):
            m = Marker()
            m.header = msg.position.header
            m.ns, m.id, m.type, m.action = "anyref", i, kind, Marker.ADD
            p = msg.position.point  # copied: rclpy assigns messages by reference
            m.pose.position = Point(x=p.x, y=p.y, z=p.z)
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = 0.05
            m.color.r, m.color.g, m.color.b, m.color.a = 1.0, 0.25, 0.63, 1.0
            m.lifetime.sec = int(lifetime)
            m.lifetime.nanosec = int((lifetime % 1.0) * 1e9)
            if kind == Marker.TEXT_VIEW_FACING:
                m.pose.position.z -= 0.08
                m.text = msg.description or msg.query
                m.color.r = m.color.g = m.color.b = 1.0
            out.markers.append(m)
        return out

    def _wait(self, job: eng.Job, timeout: float) -> None:
        try:
            job.result(timeout)
        except TimeoutError:
            self._engine and self._engine.cancel(job)
            raise QueryError(f"no answer within query_timeout_s={timeout:g} s; the query was cancelled") from None

    def _fail(self, response, exc: Exception, what: str):
        self._counts["queries_failed" if not str(exc).startswith("busy") else "queries_refused"] += 1
        response.success = False
        response.message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        self.get_logger().warning(f"{what} failed: {response.message}")
        return response

    # --------------------------------------------------------------- services
    def _on_segment(self, request: Segment.Request, response: Segment.Response) -> Segment.Response:
        try:
            req, header, kind = self._segment_request(request)
            job = self._submit(req)
            self._wait(job, self.param("query_timeout_s"))
            response.result = self._finish(job, header, request.text, kind)
        except Exception as exc:  # every failure is answered, the node keeps running
            return self._fail(response, exc, "segment")
        response.success, response.message = True, "ok"
        return response

    def _on_describe(self, request: DescribeRegion.Request, response: DescribeRegion.Response):
        try:
            req, header, kind = self._describe_request(request)
            job = self._submit(req)
            self._wait(job, self.param("query_timeout_s"))
            response.result = self._finish(job, header, "", kind)
        except Exception as exc:
            return self._fail(response, exc, "describe_region")
        response.success, response.message = True, "ok"
        return response

    def _on_segment_sound(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Segment what makes the sound heard on the audio topic (last audio_window_s)."""
        try:
            self._require_active()
            with self._lock:
                audio = np.concatenate(list(self._audio)) if self._audio else None
                rate = self._audio_rate
            if audio is None:
                raise QueryError("no audio has arrived on the audio topic yet")
            frame, header = self._scene(None)
            job = self._submit(eng.Request(frame=frame, audio=audio, sample_rate=rate))
            self._wait(job, self.param("query_timeout_s"))
            msg = self._finish(job, header, "", Referral.TYPE_AUDIO)
        except Exception as exc:
            return self._fail(response, exc, "segment_sound")
        response.success, response.message = True, msg.description
        return response

    def _on_query(self, msg: String) -> None:
        """A typed or transcribed query, answered on the latest frame; results on ~/results."""
        try:
            text = self._check_text(msg.data)
            if text is None:
                raise QueryError("empty query")
            frame, header = self._scene(None)
            job = self._submit(eng.Request(frame=frame, text=text))
            self._wait(job, self.param("query_timeout_s"))
            self._finish(job, header, text, Referral.TYPE_TEXT)
        except Exception as exc:
            self._counts["queries_failed"] += 1
            self.get_logger().warning(f"query {msg.data[:60]!r} failed: {exc}")

    # ----------------------------------------------------------------- action
    def _on_goal(self, goal: Refer.Goal) -> GoalResponse:
        """Accepting a goal is submitting it: REJECT exactly when the node is
        inactive or the queue is full. A goal with bad input is accepted and
        aborted with the reason (a rejection could not carry a message)."""
        try:
            req, header, kind = self._segment_request(goal)
            job = self._submit(req)
        except QueryError as exc:
            if str(exc).startswith(("busy", "the node is not active", "the node is shutting down")):
                self._counts["queries_refused"] += 1
                self.get_logger().warning(f"refer goal rejected: {exc}")
                return GoalResponse.REJECT
            self._goals[id(goal)] = exc
            return GoalResponse.ACCEPT
        self._goals[id(goal)] = (job, header, kind)
        return GoalResponse.ACCEPT

    def _execute_refer(self, goal_handle) -> Refer.Result:
        result = Refer.Result()
        start = time.monotonic()
        pending = self._goals.pop(id(goal_handle.request), None)

        def feedback(job: eng.Job, stage: str) -> None:
            fb = Refer.Feedback()
            fb.stage = stage
            fb.queue_position = self._engine.queue_position(job) if self._engine else 0
            fb.elapsed_ms = float((time.monotonic() - start) * 1000.0)
            goal_handle.publish_feedback(fb)

        try:
            if not isinstance(pending, tuple):
                raise pending or QueryError("internal error: goal was not registered")
            job, header, kind = pending
            job.on_stage = feedback
            feedback(job, job.stage)
            deadline = start + self.param("query_timeout_s")
            while not job.wait(0.02):
                if goal_handle.is_cancel_requested:
                    self._engine and self._engine.cancel(job)
                    job.wait(5.0)
                    goal_handle.canceled()
                    result.success, result.message = False, "cancelled"
                    return result
                if time.monotonic() > deadline:
                    self._engine and self._engine.cancel(job)
                    raise QueryError("no answer within query_timeout_s; the query was cancelled")
            result.result = self._finish(job, header, goal_handle.request.text, kind)
        except Exception as exc:
            self._fail(result, exc, "refer")
            goal_handle.abort()
            return result
        result.success, result.message = True, "ok"
        goal_handle.succeed()
        return result

    # ------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        with self._lock:
            counts = dict(self._counts)
            latest = self._latest
        engine = self._engine
        status = DiagnosticStatus()
        status.name = f"{self.get_name()}: AnyRef"
        status.hardware_id = self._device
        stats = engine.stats() if engine else {}
        if engine is None:
            status.level, status.message = DiagnosticStatus.WARN, "inactive: no model loaded"
        elif latest is None:
            status.level, status.message = DiagnosticStatus.WARN, "no camera frame received yet"
            if not self._warned_no_frames and time.monotonic() - self._started > 5.0:
                self._warned_no_frames = True
                self.get_logger().warning(
                    f"no camera frame after 5 s on {self._subs[0].topic_name if self._subs else 'image'}: "
                    "check the remapping and image_qos (a RELIABLE subscriber gets nothing from a BEST_EFFORT camera)")
        else:
            status.level, status.message = DiagnosticStatus.OK, "ready"
        values = {**counts, "device": self._device, "queue_depth": stats.get("queue_depth", 0),
                  "busy": stats.get("busy", False), "cached_frames": stats.get("cached_frames", 0),
                  "device_memory_mb": f"{_device_memory_mb(self._device):.1f}"}
        for stage, ms in stats.get("stage_ms", {}).items():
            values[f"latency_ms.{stage}"] = ms
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [status]
        self._diag_pub.publish(array)


def _device_memory_mb(device: str) -> float:
    """GPU memory allocated by torch on a cuda device, else this process's resident memory."""
    try:
        if device.startswith("cuda"):
            import torch

            return torch.cuda.memory_allocated(torch.device(device)) / 2**20
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except Exception:
        return float("nan")


def resolve_checkpoint(checkpoint: str) -> str:
    """A folder path or preset name for ``AnyRefPipeline.from_pretrained``.

    Tried in order: an existing folder as given; a preset name; the path
    relative to the package's share folder (where ``model/toy`` is installed).
    """
    from pathlib import Path

    from anyref_ros.model import preset_names

    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return str(path)
    if checkpoint in preset_names():
        return checkpoint
    share = ros_env.share_dir()
    if share is not None and not path.is_absolute() and (share / path).is_dir():
        return str(share / path)
    raise FileNotFoundError(
        f"checkpoint {checkpoint!r} is neither a folder (looked in {Path.cwd()} and "
        f"{share or 'the package share folder'}) nor a preset ({', '.join(preset_names())})")


def main(args: Optional[list[str]] = None) -> NoReturn:
    """Console entry point: ``anyref_node --ros-args --params-file config/anyref.yaml``."""
    run_node(AnyRefNode, args, threads=8, release=lambda node: node._release_model())


if __name__ == "__main__":
    main()
