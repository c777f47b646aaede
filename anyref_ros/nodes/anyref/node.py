"""anyref_node: the ROS 2 lifecycle node ``anyref``.

Camera frames, depth, audio and queries in; masks, descriptions, 3D positions,
sound sources, debug pictures and diagnostics out. This module wires the
parts and runs the lifecycle; each concern has its module:

* :mod:`.intake` — camera callbacks (frames, depth, camera info);
* :mod:`.hearing` — audio callback (ring buffer + sound-event detector);
* :mod:`.queries` (+ :mod:`.requests`) — services and the query topic;
* :mod:`.refer` — the ~/refer action;
* :mod:`.sound_events` — sound events -> queries -> ``~/sound_sources``;
* :mod:`.watching` — standing queries (``watch``, ``~/watch``), answered on every frame;
* :mod:`.publishing` — Referral, mask, debug image, detections, points, markers
  (built by :mod:`.detections`; the 3D answer from :mod:`.space`, TF from
  :mod:`.transforms`);
* :mod:`.diagnostics` — ``/diagnostics``;
* :mod:`.loading` — the model, loaded off the executor on activate.

Start-up is never half-done: the executor spins from the first moment;
``on_activate`` only checks the checkpoint and starts a loader thread, so the
lifecycle services, ``/diagnostics`` and every query answer while the model
loads ("loading the model (x s so far)"), and camera frames are kept. A failed
load takes the node back to inactive, with the reason in the log, in
``/diagnostics`` (ERROR) and in every answer.
"""

from __future__ import annotations

import time
from typing import NoReturn, Optional

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from anyref_ros.nodes.common import declare_parameters, run_node
from anyref_ros.parameters import BY_NAME, PARAMS

from .diagnostics import Diagnostics
from .hearing import Hearing
from .intake import Intake
from .loading import LoadSettings, ModelSlot, resolve_checkpoint
from .publishing import Publishing
from .queries import Queries
from .refer import ReferAction
from .sound_events import SoundEvents
from .support import Stats, Throttle
from .transforms import Transforms
from .watching import Watching

NODE_NAME = "anyref"
#: Executor threads besides the waiting callers: sensors, audio, TF, diagnostics,
#: lifecycle/parameter services, action goal/cancel/result requests, one spare.
RESERVE_THREADS = 7

__all__ = ["AnyRefNode", "main", "resolve_checkpoint", "NODE_NAME"]


class AnyRefNode(LifecycleNode):
    """The ``anyref`` node (see the module docstring and the README)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_parameters(self, PARAMS)
        self.stats = Stats()
        self.throttle = Throttle(self.get_logger())
        self.sensor_group = MutuallyExclusiveCallbackGroup()
        self.audio_group = MutuallyExclusiveCallbackGroup()
        self.diagnostics_group = MutuallyExclusiveCallbackGroup()
        self.tf_group = MutuallyExclusiveCallbackGroup()
        self.model = ModelSlot(self.get_logger(), self._on_load_failure)
        self.intake = Intake(self, on_frame=self._on_frame,
                             on_depth=lambda depth: self.sound.on_depth(depth))
        self.hearing = Hearing(self, on_sound=lambda event: self.sound.on_event(event))
        self.transforms = Transforms(self)
        self.publishing = Publishing(self, self.intake, self.transforms)
        self.sound = SoundEvents(self, self.intake, self.hearing, self.model, self.publishing, self.transforms)
        # Queries are always served: while not ready they answer why at once.
        self.queries = Queries(self, self.intake, self.hearing, self.model, self.publishing)
        self.refer = ReferAction(self, self.queries)
        self.watching = Watching(self, self.intake, self.model, self.publishing, self.queries.build)
        self.diagnostics = Diagnostics(self)
        self.create_timer(1.0, self.diagnostics.publish, callback_group=self.diagnostics_group)

    def _on_frame(self, frame) -> None:
        self.sound.on_frame(frame)
        self.watching.on_frame(frame)

    def autostart_pending(self) -> None:
        """run_node will configure and activate: queries answer "loading" until then."""
        self.model.expect_start()

    def param(self, name: str):
        return self.get_parameter(name).value

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @classmethod
    def executor_threads(cls, node: "AnyRefNode") -> int:
        """Threads for run_node: every caller that may wait, plus the reserve."""
        return node.param("max_queue") + 1 + RESERVE_THREADS

    # ------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return self._configure()
        except Exception as exc:  # noqa: BLE001 - unconfigured, and says why
            return self._configure_failed(f"cannot configure: {type(exc).__name__}: {exc}")

    def _configure(self) -> TransitionCallbackReturn:
        for name in ("dtype", "image_qos"):
            if self.param(name) not in BY_NAME[name].choices:
                return self._configure_failed(f"parameter {name}={self.param(name)!r}: expected one of "
                                              f"{BY_NAME[name].choices}")
        try:
            self.hearing.subscribe(self.audio_group)
        except ValueError as exc:  # sound-event parameters that contradict each other
            return self._configure_failed(f"cannot configure: {exc}")
        self.intake.subscribe(self.sensor_group)
        self.transforms.subscribe(self.tf_group)
        threads = getattr(self, "executor_thread_count", None) or self.executor_threads(self)
        self.queries.subscribe(min(self.param("max_queue") + 1, max(1, threads - RESERVE_THREADS)))
        self.publishing.create()
        self.watching.create()
        self.sound.start()
        self.watching.start()
        topics = [s.topic_name for s in self.intake.subs] + [self.hearing.sub.topic_name, self.queries.topic]
        self.get_logger().info(f"configured: listening on {topics[0]} ({self.param('image_qos')} QoS), "
                               f"{', '.join(topics[1:])}")
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self.get_logger().error(reason)
        self.model.fail(reason + "; fix it, then configure and activate")
        self.sound.stop()
        self.intake.unsubscribe()
        self.transforms.unsubscribe()
        self.hearing.unsubscribe()
        self.queries.unsubscribe()
        self.watching.destroy()
        self.publishing.destroy()
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.param
        settings = LoadSettings(checkpoint=p("checkpoint"), device=None if p("device") == "auto" else p("device"),
                                dtype=None if p("dtype") == "auto" else p("dtype"), max_queue=p("max_queue"),
                                frame_cache=p("frame_cache"), max_batch=p("max_batch"), warmup=p("warmup"),
                                cpu_threads=p("cpu_threads"),
                                quantization=None if p("quantization") == "none" else p("quantization"),
                                compile=p("compile"))
        try:
            self.model.start(settings)  # checks files, then loads in a thread
        except Exception as exc:  # noqa: BLE001 - the node stays up, inactive, and says why
            reason = f"cannot load checkpoint {settings.checkpoint!r}: {exc}"
            self.get_logger().error(reason)
            self.model.fail(reason + "; fix it and activate again")
            return TransitionCallbackReturn.FAILURE
        self.stats.clear_recent()
        self.get_logger().info(f"activating: loading {settings.checkpoint!r} in the background")
        return super().on_activate(state)

    def _on_load_failure(self, generation: int, reason: str) -> None:
        """From the loader thread: back to inactive (if nothing changed meanwhile)."""
        time.sleep(0.05)  # let a transition that is still returning finish
        if self.model.generation != generation or self._state_machine.current_state[1] != "active":
            return
        try:
            self.trigger_deactivate()
        except Exception as exc:  # noqa: BLE001 - e.g. a transition requested at the same moment
            self.get_logger().warning(f"could not deactivate after the failed load: {exc}")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        self.sound.stop()
        self.intake.unsubscribe()
        self.transforms.unsubscribe()
        self.hearing.unsubscribe()
        self.queries.unsubscribe()
        self.watching.destroy()
        self.publishing.destroy()
        self.model.failure = ""
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        self.sound.stop()
        self.watching.stop()
        return TransitionCallbackReturn.SUCCESS

    def release(self, timeout: float = 1.0) -> None:
        """Free the model; queued and running queries answer at once (a model
        call that ignores cancel is abandoned after ``timeout`` s)."""
        self.model.release(timeout=timeout)
        self.queries.held.drop_all("the node was deactivated before it could be answered; activate it and ask again")
        self.refer.drop_goals()
        self.sound.clear()

    @property
    def active(self) -> bool:
        return self.model.state == "ready"


def main(args: Optional[list[str]] = None) -> NoReturn:
    """Console entry point: ``anyref_node --ros-args --params-file config/anyref.yaml``."""
    run_node(AnyRefNode, args, threads=AnyRefNode.executor_threads, release=lambda node: node.release(0.2))


if __name__ == "__main__":
    main()
