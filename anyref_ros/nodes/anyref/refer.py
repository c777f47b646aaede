"""The ~/refer action (anyref_ros/Refer): Segment with feedback per stage and cancel.

Accepting a goal is submitting it: a goal is REJECTED exactly when the node
is not ready (loading, inactive) or busy (no free waiting place, engine queue
full); a goal with bad input is accepted and aborted with the reason (a
rejection cannot carry a message). Bookkeeping of accepted goals is freed on
every path: when the goal executes (success, abort, cancel), on deactivate,
and for goals whose execution never starts (their goal response could not be
sent) after :data:`UNCLAIMED_GOAL_S`; at most :data:`MAX_PENDING_GOALS` wait
to start. Finished results are kept :data:`RESULT_TIMEOUT_S` (rclpy's default
is 15 minutes, with every goal's images and mask).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.qos import QoSProfile, ReliabilityPolicy

from anyref_ros import engine as eng
from anyref_ros.action import Refer

from .queries import SERVICE_QUEUE
from .support import QueryError, Refused, guarded

RESULT_TIMEOUT_S = 10  # how long the action server keeps a finished goal's result
UNCLAIMED_GOAL_S = 30.0  # an accepted goal whose execution never started is dropped after this
MAX_PENDING_GOALS = 64  # accepted goals not yet executing; more are rejected


@dataclass
class PendingGoal:
    goal: Any  # the goal message: kept referenced so its id() stays unique while the entry lives
    created: float
    job: Optional[eng.Job] = None
    generation: int = 0
    header: Any = None
    kind: str = ""
    error: Optional[Exception] = None
    holds_slot: bool = False


class ReferAction:
    def __init__(self, node, queries) -> None:
        self.node = node
        self.q = queries
        self.log = node.throttle
        self.stats = node.stats
        self.model = queries.model
        self._goals: dict[int, PendingGoal] = {}
        self._goals_lock = threading.Lock()
        qos = QoSProfile(depth=SERVICE_QUEUE, reliability=ReliabilityPolicy.RELIABLE)
        self.server = ActionServer(
            node, Refer, "~/refer", execute_callback=self.execute_refer, goal_callback=self.on_goal,
            cancel_callback=self.on_cancel, callback_group=queries.group, result_timeout=RESULT_TIMEOUT_S,
            goal_service_qos_profile=qos, cancel_service_qos_profile=qos, result_service_qos_profile=qos)

    @guarded("refer goal", default=lambda goal: GoalResponse.REJECT)
    def on_goal(self, goal: Refer.Goal) -> GoalResponse:
        """Accepting a goal is submitting it: REJECT exactly when the node is not
        ready or busy. A goal with bad input is accepted and aborted with the
        reason (a rejection cannot carry a message)."""
        self.sweep_goals()
        entry = PendingGoal(goal=goal, created=time.monotonic())
        try:
            engine, entry.generation = self.model.require(self.node.get_fully_qualified_name())
            self.q.slots.acquire()
            entry.holds_slot = True
            request, entry.header, entry.kind = self.q.build.segment(goal)
            entry.job = self.q.submit(engine, request)
        except Refused as exc:
            if entry.holds_slot:
                self.q.slots.release()
            self.stats.inc("queries_refused")
            self.log("warning", "goal-rejected", f"refer goal rejected: {exc}")
            return GoalResponse.REJECT
        except Exception as exc:  # noqa: BLE001 - bad input: accepted, then aborted with the reason
            entry.error = exc
            if entry.holds_slot:
                self.q.slots.release()
                entry.holds_slot = False
        with self._goals_lock:
            full = len(self._goals) >= MAX_PENDING_GOALS
            if not full:
                self._goals[id(goal)] = entry
        if full:  # goals whose execution never starts: bounded even if the sweep falls behind
            if entry.job is not None:
                entry.job.cancel()
            if entry.holds_slot:
                self.q.slots.release()
            self.stats.inc("queries_refused")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    @guarded("refer cancel", default=lambda goal_handle: CancelResponse.ACCEPT)
    def on_cancel(self, goal_handle) -> CancelResponse:
        return CancelResponse.ACCEPT

    def execute_refer(self, goal_handle) -> Refer.Result:
        result = Refer.Result()
        start = time.monotonic()
        with self._goals_lock:
            entry = self._goals.pop(id(goal_handle.request), None)
        try:
            if entry is None:
                raise QueryError("this goal was dropped before it ran (the node deactivated, or its execution "
                                 f"did not start within {UNCLAIMED_GOAL_S:g} s); send it again")
            if entry.error is not None:
                raise entry.error
            job = entry.job
            job.on_stage = lambda j, stage: self._feedback(goal_handle, j, stage, start)
            self._feedback(goal_handle, job, job.stage, start)
            if not self.q.wait(job, entry.generation, goal_handle):
                job.wait(5.0)
                goal_handle.canceled()
                result.success, result.message = False, "cancelled"
                self.stats.inc("queries_cancelled")
                return result
            result.result = self.q.finish(job, entry.header, goal_handle.request.text[:10000], entry.kind)
        except Exception as exc:  # noqa: BLE001
            self.q.fail(result, exc, "refer")
            self._end_goal(goal_handle, "abort")
            return result
        finally:
            if entry is not None and entry.holds_slot:
                self.q.slots.release()
        result.success, result.message = True, "ok"
        self._end_goal(goal_handle, "succeed")
        return result

    def _end_goal(self, goal_handle, how: str) -> None:
        try:
            getattr(goal_handle, how)()
        except Exception as exc:  # noqa: BLE001 - e.g. the goal was cancelled meanwhile
            self.log("warning", "goal-state", f"refer goal could not {how}: {exc}")

    def _feedback(self, goal_handle, job: eng.Job, stage: str, start: float) -> None:
        try:
            fb = Refer.Feedback()
            fb.stage = stage
            engine = self.model.engine
            fb.queue_position = engine.queue_position(job) if engine is not None else 0
            fb.elapsed_ms = float((time.monotonic() - start) * 1000.0)
            fb.partial_text = job.partial_text if stage == eng.STAGE_GENERATING else ""
            goal_handle.publish_feedback(fb)
        except Exception as exc:  # noqa: BLE001 - feedback is best effort
            self.log("warning", "feedback", f"refer feedback failed: {exc}")

    def sweep_goals(self, everything: bool = False) -> None:
        """Drop accepted goals that never started executing (their goal response
        could not be sent, or the node deactivated): cancel the job, free the slot."""
        now = time.monotonic()
        with self._goals_lock:
            stale = [k for k, e in self._goals.items() if everything or now - e.created > UNCLAIMED_GOAL_S]
            entries = [self._goals.pop(k) for k in stale]
        for e in entries:
            if e.job is not None:
                e.job.cancel()
            if e.holds_slot:
                self.q.slots.release()
        if entries:
            self.stats.inc("goals_expired", len(entries))

    def drop_goals(self) -> None:
        """On deactivate: forget goals not yet executing."""
        self.sweep_goals(everything=True)

    @property
    def pending_goals(self) -> int:
        with self._goals_lock:
            return len(self._goals)
