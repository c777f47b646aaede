"""Query input of the anyref node: ~/segment, ~/describe_region and
~/segment_sound (services) and the ``query`` topic; the ~/refer action
(:mod:`.refer`) runs its goals through the same steps.

Every callback answers: ``success: false`` with a message for anything that
goes wrong, whatever raised it. A caller that waits holds one of
``slots`` = min(max_queue + 1, executor threads - reserve) places; without a
free place it is refused at once ("busy"), so waiting callers can never take
every executor thread from sensors, lifecycle services and diagnostics.
Queries end at once with a clear message when the node deactivates.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from anyref_ros import engine as eng
from anyref_ros.srv import DescribeRegion, Segment

from .held import HeldQueries
from .requests import RequestBuilder
from .support import NotYet, QueryError, Refused, clip

POLL_S = 0.05
#: Requests a service keeps before the executor takes them (rclpy's default, 10,
#: silently drops the oldest when more arrive at once: those callers would hang).
SERVICE_QUEUE = 32


class Slots:
    """A resizable count of callers allowed to wait at once."""

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self.size, self.used = size, 0

    def acquire(self) -> None:
        with self._lock:
            if self.used >= self.size:
                raise NotYet(f"busy: {self.used} queries are already waiting or running; try again later")
            self.used += 1

    def release(self) -> None:
        with self._lock:
            self.used = max(0, self.used - 1)


class Queries:
    def __init__(self, node, intake, hearing, model, publishing) -> None:
        self.node = node
        self.log = node.throttle
        self.stats = node.stats
        self.model = model
        self.publishing = publishing
        self.build = RequestBuilder(node, intake, hearing)
        self.slots = Slots(1)
        self.group = ReentrantCallbackGroup()
        self._topic_sub = None
        self.held = HeldQueries(node, self._ask_topic, self._unanswered)
        g, qos = self.group, QoSProfile(depth=SERVICE_QUEUE, reliability=ReliabilityPolicy.RELIABLE)
        node.create_service(Segment, "~/segment", self.on_segment, qos_profile=qos, callback_group=g)
        node.create_service(DescribeRegion, "~/describe_region", self.on_describe, qos_profile=qos, callback_group=g)
        node.create_service(Trigger, "~/segment_sound", self.on_segment_sound, qos_profile=qos, callback_group=g)

    @property
    def topic(self) -> str:
        return self._topic_sub.topic_name if self._topic_sub is not None else "query"

    def subscribe(self, slots: int) -> None:
        self.slots.size = slots
        self._topic_sub = self.node.create_subscription(String, "query", self.on_query, 10, callback_group=self.group)
        self.held.start(self.group)

    def unsubscribe(self) -> None:
        if self._topic_sub is not None:
            self.node.destroy_subscription(self._topic_sub)
            self._topic_sub = None
        self.held.stop("the node was cleaned up before it could be answered")

    # ---------------------------------------------------------------- running
    @contextmanager
    def _slot(self):
        self.slots.acquire()
        try:
            yield
        finally:
            self.slots.release()

    def submit(self, engine: eng.Engine, request: eng.Request) -> eng.Job:
        lam = self.node.param("refocus_lambda")
        request.refocus_lambda = None if lam < 0 else lam
        try:
            return engine.submit(request)
        except eng.QueueFull as exc:
            raise NotYet(f"busy: {exc}") from None
        except eng.EngineClosed:
            raise Refused("the node is deactivating or shutting down; activate it and ask again") from None

    def wait(self, job: eng.Job, generation: int, goal_handle=None) -> bool:
        """Until ``job`` ends; False if the goal was cancelled. Raises QueryError on
        timeout or deactivation (the job is cancelled)."""
        deadline = time.monotonic() + self.node.param("query_timeout_s")
        while not job.wait(POLL_S):
            if self.model.generation != generation:
                job.cancel()
                raise QueryError("the node was deactivated while this query waited; activate it and ask again")
            if goal_handle is not None and goal_handle.is_cancel_requested:
                job.cancel()
                return False
            if time.monotonic() > deadline:
                job.cancel()
                raise QueryError(f"no answer within query_timeout_s={self.node.param('query_timeout_s'):g} s; "
                                 "the query was cancelled")
        if self.model.generation != generation:
            raise QueryError("the node was deactivated while this query ran; activate it and ask again")
        return True

    def finish(self, job: eng.Job, header, query: str, kind: str, topic: str = "results"):
        try:
            ref = job.result(0)
        except eng.Cancelled as exc:
            raise QueryError(f"the query was cancelled: {exc}; activate the node and ask again") from None
        frame = job.request.frame
        answer = self.publishing.referral(ref, job.latency or 0.0, header, query, kind, rgb=frame.image,
                                          depth=frame.meta)
        self.publishing.answer(answer, frame.image, ref.mask, topic)
        msg = answer.msg
        self.stats.outcome(True)
        if not msg.found:  # answered (success), but nothing to act on: not in view, or below min_score
            self.stats.inc("answers_not_found")
        return msg

    def run(self, build, query: str):
        """Validate, submit, wait and publish one query; the Referral."""
        engine, generation = self.model.require(self.node.get_fully_qualified_name())
        with self._slot():
            request, header, kind = build()
            job = self.submit(engine, request)
            self.wait(job, generation)
            return self.finish(job, header, query, kind)

    @staticmethod
    def fail_message(exc: Exception) -> str:
        return str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"

    def fail(self, response, exc: Exception, what: str, label: str = ""):
        """Answer ``response`` with why ``exc`` happened; counted, logged (throttled per ``what``)."""
        message = self.fail_message(exc)
        if isinstance(exc, Refused):
            self.stats.inc("queries_refused")
        else:
            self.stats.outcome(False, message)
        response.success, response.message = False, message
        self.log("warning", f"fail:{what}", f"{label or what} failed: {clip(message, 300)}")
        return response

    # --------------------------------------------------------------- services
    def on_segment(self, request: Segment.Request, response: Segment.Response):
        try:
            response.result = self.run(lambda: self.build.segment(request), request.text[:10000])
        except Exception as exc:  # noqa: BLE001 - every failure is answered
            return self.fail(response, exc, "segment")
        response.success, response.message = True, "ok"
        return response

    def on_describe(self, request: DescribeRegion.Request, response: DescribeRegion.Response):
        try:
            response.result = self.run(lambda: self.build.describe(request), "")
        except Exception as exc:  # noqa: BLE001
            return self.fail(response, exc, "describe_region")
        response.success, response.message = True, "ok"
        return response

    def on_segment_sound(self, request: Trigger.Request, response: Trigger.Response):
        """Segment what makes the sound heard on the audio topic (last audio_window_s)."""
        try:
            msg = self.run(self.build.heard, "")
        except Exception as exc:  # noqa: BLE001
            return self.fail(response, exc, "segment_sound")
        response.success, response.message = True, msg.description
        return response

    def on_query(self, msg: String) -> None:
        """A typed or transcribed query, answered on the latest frame; results on ~/results.
        Never silent (:mod:`.held`): kept while the model loads or every place is taken,
        and published as not answered, with why, when it fails."""
        try:
            self._ask_topic(msg.data)
        except NotYet as exc:
            self.held.hold(msg.data, str(exc))
        except Exception:  # noqa: BLE001 - _ask_topic has published why
            pass

    def _ask_topic(self, text: str) -> None:
        try:
            self.run(lambda: self.build.text_query(text), text)
        except NotYet:
            raise
        except Exception as exc:  # noqa: BLE001
            self.fail(Trigger.Response(), exc, "query", f"query {clip(text, 60)!r}")
            self._unanswered(text, self.fail_message(exc))
            raise

    def _unanswered(self, text: str, reason: str) -> None:
        self.publishing.unanswered(text[:10000], reason, self.build.intake.latest)
