"""Standing queries of the anyref node: the ``watch`` parameter, the ``~/watch``
service, and their answers on every new camera frame.

A worker thread takes the newest frame (frames that come while the model is
busy are replaced, never queued; at most ``watch_rate_hz``), submits every
standing query on it to the engine together (one image encoding, the
frame's cached prompt start, one batch; one-shot queries overtake them and
a one-shot query on the same frame joins the batch), and publishes, per
answered frame:

* ``~/detections``: one Detection2D per found standing query, ``id`` = the
  standing query's id for its whole life, class = its name or text;
* ``~/labels`` (mono16, the frame's size: 0 = background, k = the standing
  query with label k) and, when the list changes, ``~/label_info``
  (TRANSIENT_LOCAL: label -> class);
* with depth: ``~/detections_3d`` (their oriented boxes) and, for the
  followed one, ``~/object_points`` and ``~/target_pose``
  (geometry_msgs/PoseStamped in ``target_frame``);
* found / lost changes, logged and counted (``watch_found``, ``watch_lost``).

A fault in one standing query fails only its own answer (the engine runs a
failed batch's rows apart). Standing answers never go to ``~/results``.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo, VisionClass

from anyref_ros import engine as eng
from anyref_ros.msg import Referral
from anyref_ros.nodes import conversions as conv
from anyref_ros.srv import Watch
from anyref_ros.standing import Standing, WatchList

from . import detections as det
from .publishing import build_referral
from anyref_ros.workers import Worker

from .support import QueryError, Refused, clip, guarded

IDLE_S = 0.05  # how often the worker looks for a frame when there is none


class Watching:
    def __init__(self, node, intake, model, publishing, build) -> None:
        self.node = node
        self.intake, self.model, self.publishing, self.build = intake, model, publishing, build
        self.log = node.throttle
        self.stats = node.stats
        self.list = WatchList()
        self._frame = None
        self._answered_key: Optional[int] = None
        self._cond = threading.Condition()
        self._worker = Worker("anyref-watch", self._run, report=node.get_logger().error)
        self._label_version = -1
        self.pubs: dict = {}
        self.last_frame_ms = 0.0
        node.create_service(Watch, "~/watch", self.on_watch)
        node.add_on_set_parameters_callback(self._check_parameters)

    # ------------------------------------------------------------ lifecycle
    def create(self) -> None:
        node = self.node
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pubs = {"labels": node.create_lifecycle_publisher(Image, "~/labels", 10),
                     "label_info": node.create_lifecycle_publisher(LabelInfo, "~/label_info", latched),
                     "target_pose": node.create_lifecycle_publisher(PoseStamped, "~/target_pose", 10)}
        self._label_version = -1

    def destroy(self) -> None:
        self.stop()
        pubs, self.pubs = self.pubs, {}
        for pub in pubs.values():
            self.node.destroy_lifecycle_publisher(pub)

    def start(self) -> None:
        """The worker thread, stopping (joined, checked) any earlier one first;
        WorkerStuck if that one does not end."""
        self._worker.start()

    def stop(self) -> None:
        self._worker.request_stop()
        with self._cond:
            self._cond.notify_all()
        self._worker.stop()

    def on_frame(self, frame) -> None:
        """From the image callback: the newest frame replaces one not yet taken."""
        with self._cond:
            if self._frame is not None and len(self.list):
                self.stats.inc("watch_frames_skipped")  # the model was busy: the newest frame wins
            self._frame = frame
            self._cond.notify()

    # ------------------------------------------------------------ parameter
    def _check_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "watch":
                try:
                    texts = [self._entry(k, t) for k, t in enumerate(p.value)]
                except QueryError as exc:
                    return SetParametersResult(successful=False, reason=f"watch: {exc}")
                added, removed = self.list.parameter_changes(texts)
                room = self.node.param("max_watch") - (len(self.list) - len(removed))
                if len(added) > room:
                    return SetParametersResult(successful=False, reason=(
                        f"watch: {len(added)} new standing queries but room for {max(room, 0)} "
                        f"(max_watch={self.node.param('max_watch')})"))
        return SetParametersResult(successful=True)

    def _entry(self, k: int, text: str) -> str:
        try:
            usable = self.build.text(text)
        except QueryError as exc:
            raise QueryError(f"entry {k}: {exc}") from None
        if usable is None:
            raise QueryError(f"entry {k} is empty; remove it or give a referring expression")
        return text

    def _sync_parameter(self) -> None:
        added, removed = self.list.parameter_changes(list(self.node.param("watch")))
        for item in removed:
            self.list.remove(item.id)
            self.node.get_logger().info(f"stopped watching {item.class_name!r} ({item.id})")
        for text in added:
            try:
                item = self.list.add(self.node.param("max_watch"), text=text, from_parameter=True)
            except ValueError as exc:
                self.log("warning", "watch-param", f"not watching {clip(text, 60)!r}: {exc}")
                continue
            self.node.get_logger().info(f"watching {text!r} as {item.id} (label {item.label})")

    # -------------------------------------------------------------- service
    @guarded("watch", default=lambda request, response: response)
    def on_watch(self, request: Watch.Request, response: Watch.Response) -> Watch.Response:
        try:
            if request.operation == Watch.Request.ADD:
                response.id = self._add(request).id
            elif request.operation == Watch.Request.REMOVE:
                item = self.list.remove(request.id)
                if item is None:
                    raise QueryError(f"no standing query {request.id!r}; LIST shows the ids")
                if item.from_parameter:
                    self.log("warning", "watch-remove", f"{item.id} came from the watch parameter; it comes back "
                                                        "unless the parameter changes")
            elif request.operation != Watch.Request.LIST:
                raise QueryError(f"operation {request.operation}: expected ADD (0), REMOVE (1) or LIST (2)")
        except QueryError as exc:
            response.success, response.message = False, str(exc)
            return response
        for item in self.list.snapshot():
            response.ids.append(item.id)
            response.names.append(item.name)
            response.texts.append(item.text or "")
            response.labels.append(item.label)
            response.found.append(item.found)
        response.success, response.message = True, "ok"
        return response

    def _add(self, request) -> Standing:
        text = self.build.text(request.text)
        exemplar, mask = self.build.exemplar(request)
        if text is None and exemplar is None:
            raise QueryError("nothing to watch: give a text and/or an exemplar image")
        name = request.name.strip()[:200]
        try:
            item = self.list.add(self.node.param("max_watch"), text=text, exemplar=exemplar, exemplar_mask=mask,
                                 name=name)
        except ValueError as exc:
            raise QueryError(str(exc)) from None
        self.node.get_logger().info(f"watching {item.class_name!r} as {item.id} (label {item.label})")
        return item

    # --------------------------------------------------------------- worker
    def _next_frame(self, stop: threading.Event):
        """The newest frame not yet answered (None when stopping)."""
        with self._cond:
            while not stop.is_set():
                frame = self._frame
                if frame is not None and frame.key != self._answered_key and len(self.list):
                    self._frame = None
                    return frame
                self._cond.wait(IDLE_S)
                self._sync_parameter()
        return None

    def _run(self, stop: threading.Event) -> None:
        last_start = 0.0
        while not stop.is_set():
            self._sync_parameter()
            frame = self._next_frame(stop)
            if frame is None:
                return
            rate = self.node.param("watch_rate_hz")
            if rate > 0:
                wait = last_start + 1.0 / rate - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    return
                with self._cond:  # a newer frame may have come meanwhile
                    frame, self._frame = (self._frame or frame), None
            last_start = time.monotonic()
            try:
                self._answer(frame, stop)
            except Refused:
                time.sleep(IDLE_S)  # loading or inactive: the next frame tries again
            except Exception as exc:  # noqa: BLE001 - the worker goes on with the next frame
                self.stats.inc("watch_frames_failed")
                self.log("warning", "watch", f"standing queries on a frame failed: {clip(str(exc), 300)}")
            self._answered_key = frame.key
            self.last_frame_ms = (time.monotonic() - last_start) * 1000.0

    def _answer(self, frame, stop: threading.Event) -> None:
        items = self.list.snapshot()
        if not items:
            return
        engine, generation = self.model.require(self.node.get_fully_qualified_name())
        rgb = frame.rgb(self.node.param("max_image_pixels"))
        depth = self.intake.depth.nearest(frame.stamp, self.node.param("depth_sync_slop_s"))
        shared = eng.Frame(image=rgb, key=frame.key, meta=depth)
        lam = self.node.param("refocus_lambda")
        requests = [eng.Request(frame=shared, text=i.text, exemplar=i.exemplar, exemplar_mask=i.exemplar_mask,
                                refocus_lambda=None if lam < 0 else lam) for i in items]
        try:
            jobs = engine.submit_standing(requests, limit=self.node.param("max_watch"))
        except (eng.QueueFull, eng.EngineClosed) as exc:
            raise Refused(str(exc)) from None
        deadline = time.monotonic() + self.node.param("query_timeout_s")
        for job in jobs:
            while not job.wait(0.05):
                if stop.is_set() or self.model.generation != generation or time.monotonic() > deadline:
                    for j in jobs:
                        j.cancel("standing queries stopped")
                    return
        self._publish(frame, rgb, depth, items, jobs)

    # ------------------------------------------------------------ publishing
    def _publish(self, frame, rgb, depth, items: list[Standing], jobs: list[eng.Job]) -> None:
        header = frame.header
        lost_after = self.node.param("watch_lost_after")
        follow = self.node.param("follow")
        found2d, found3d = Detection2DArray(header=header), None
        labels = np.zeros(rgb.shape[:2], np.uint16)
        output_header = None
        for item, job in zip(items, jobs):
            try:
                ref = job.result(0)
            except Exception as exc:  # noqa: BLE001 - this standing query's own fault
                self.stats.inc("watch_answers_failed")
                self.log("warning", f"watch:{item.id}", f"{item.class_name!r} on a frame: {clip(str(exc), 200)}")
                continue
            msg = build_referral(ref, header, item.text or item.name, Referral.TYPE_TEXT if item.text else
                                 Referral.TYPE_EXEMPLAR, job.latency or 0.0, self.node.param("min_score"))
            msg.id, msg.query = item.id, item.class_name
            change = self.list.observe(item, msg.found, lost_after)
            if change is not None:
                self.stats.inc(f"watch_{change}")
                self.node.get_logger().info(f"standing query {item.id} {item.class_name!r}: {change}")
            if not msg.found:
                continue
            found2d.detections += det.detections_2d(msg).detections
            labels[np.asarray(ref.mask, dtype=bool)] = item.label
            outcome = self.publishing.space.locate(ref.mask, header, rgb, depth)
            if not outcome.has_depth:
                continue
            output_header = Header(stamp=header.stamp, frame_id=self.publishing.space.output_frame())
            found3d = found3d or Detection3DArray(header=output_header)
            if outcome.located is None:
                continue
            found3d.detections += det.detections_3d(msg, outcome.located, output_header).detections
            if follow and follow in (item.name, item.text, item.id):
                self._follow(outcome.located, output_header)
        pubs = self.publishing.pubs
        if not pubs or not self.pubs:
            return
        pubs["detections"].publish(found2d)
        if found3d is not None or (depth is not None and self.intake.camera_info is not None):
            out = found3d or Detection3DArray(header=Header(stamp=header.stamp,
                                                            frame_id=self.publishing.space.output_frame()))
            pubs["detections_3d"].publish(out)
        self.pubs["labels"].publish(conv.numpy_to_image(labels, "mono16", header))
        self._publish_label_info(header)

    def _follow(self, located, header: Header) -> None:
        pose = det.box_pose(located)
        p = located.position
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in p)
        self.pubs["target_pose"].publish(PoseStamped(header=header, pose=pose))
        pubs = self.publishing.pubs
        if pubs and pubs["object_points"].get_subscription_count() > 0:
            pubs["object_points"].publish(det.object_cloud(located, header))

    def _publish_label_info(self, header: Header) -> None:
        if self._label_version == self.list.version:
            return
        self._label_version = self.list.version
        info = LabelInfo(header=header, threshold=float(self.node.param("min_score")))
        info.class_map = [VisionClass(class_id=0, class_name="background")] + [
            VisionClass(class_id=i.label, class_name=i.class_name) for i in self.list.snapshot()]
        self.pubs["label_info"].publish(info)
