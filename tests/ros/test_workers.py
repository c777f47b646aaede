"""One worker thread of a kind at a time (anyref_ros.workers): real nodes in
this process go through their lifecycle again and again, and afterwards
exactly one thread of each worker is alive, the new run's; the helper's
checked join reports a thread that does not stop and refuses to start a
second one next to it."""

from __future__ import annotations

import threading
import time

import pytest
from lifecycle_msgs.msg import State

from anyref_ros.workers import Worker, WorkerStuck, checked_join

SETTLE_S = 1.0  # longer than any worker's idle wait (0.5 s): a told-to-stop thread has ended by then


_EARLIER: set[threading.Thread] = set()


@pytest.fixture(autouse=True)
def earlier_threads():
    """Threads of nodes other tests in this process left behind are not counted."""
    _EARLIER.clear()
    _EARLIER.update(threading.enumerate())
    yield


def alive(name: str) -> list[threading.Thread]:
    """The live threads called ``name`` started during this test."""
    return [t for t in threading.enumerate() if t.name == name and t.is_alive() and t not in _EARLIER]


def state(node) -> int:
    return node._state_machine.current_state[0]


def test_sound_event_worker_once_after_cleanup_and_configure(ros_context):
    """The anyref node's sound-event thread runs from configure to cleanup.
    Cleanup then configure at once (the old thread still inside its wait):
    one thread afterwards, and it is the new run's (before, the new run was
    skipped while the old thread lived, and then no thread was left)."""
    from anyref_ros.nodes.anyref import AnyRefNode

    node = AnyRefNode(context=ros_context)
    try:
        for _ in range(3):
            node.trigger_configure()
            assert state(node) == State.PRIMARY_STATE_INACTIVE
            node.trigger_cleanup()
            assert state(node) == State.PRIMARY_STATE_UNCONFIGURED
            assert alive("anyref-sound-events") == []  # cleanup joined it
        node.trigger_configure()
        time.sleep(SETTLE_S)
        threads = alive("anyref-sound-events")
        assert len(threads) == 1 and node.sound._worker.running, threads
        node.trigger_cleanup()
        assert alive("anyref-sound-events") == []
    finally:
        node.destroy_node()


#: Each way back from active, and the way forward again.
BACK = {"deactivate": ("deactivate",), "cleanup": ("deactivate", "cleanup")}
FORWARD = {"deactivate": ("activate",), "cleanup": ("configure", "activate")}


def cycle_activation(node, thread_name: str, worker, back: str = "deactivate", idle: int = 0,
                     active=lambda: True) -> None:
    """configure and activate, then back (deactivate, or deactivate and cleanup)
    and forward again three times, at once: ``idle`` threads of the worker
    alive while back (0; 1 for a worker that runs from configure to cleanup),
    exactly one, the running one, while active. ``active()``: the node is
    done activating (e.g. its model loaded), waited for before the last way
    back."""
    node.trigger_configure()
    assert state(node) == State.PRIMARY_STATE_INACTIVE
    node.trigger_activate()
    for _ in range(3):
        assert state(node) == State.PRIMARY_STATE_ACTIVE
        for transition in BACK[back]:
            getattr(node, f"trigger_{transition}")()
        assert len(alive(thread_name)) == idle
        for transition in FORWARD[back]:
            getattr(node, f"trigger_{transition}")()
    assert state(node) == State.PRIMARY_STATE_ACTIVE
    time.sleep(SETTLE_S)
    assert len(alive(thread_name)) == 1 and worker.running
    deadline = time.monotonic() + 120
    while not active() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert active(), "the node did not finish activating"
    assert len(alive(thread_name)) == 1 and worker.running
    for transition in BACK[back]:
        getattr(node, f"trigger_{transition}")()
    assert len(alive(thread_name)) == idle


def test_speech_worker_once_after_deactivate_and_activate(ros_context):
    """The speech node's recogniser thread (it reads this run's queue)."""
    from anyref_ros.nodes.speech import SpeechNode

    node = SpeechNode(context=ros_context)
    try:
        cycle_activation(node, "anyref_speech_asr", node._worker)
    finally:
        node.destroy_node()


def test_speech_worker_once_after_cleanup_configure_activate(ros_context):
    """The recogniser thread when the whole node is set up again (new recogniser, new queue)."""
    from anyref_ros.nodes.speech import SpeechNode

    node = SpeechNode(context=ros_context)
    try:
        cycle_activation(node, "anyref_speech_asr", node._worker, back="cleanup")
    finally:
        node.destroy_node()


def mic_node(ros_context):
    """The microphone retrying on a missing device (no sound card here)."""
    from rclpy.parameter import Parameter

    from anyref_ros.nodes.mic import MicNode

    return MicNode(context=ros_context, parameter_overrides=[
        Parameter("device", value="no such microphone"), Parameter("retry_s", value=0.2)])


@pytest.mark.parametrize("back", ["deactivate", "cleanup"])
def test_sound_event_worker_once_after_reactivation(ros_context, back):
    """The anyref node's sound-event thread (it runs from configure to cleanup)
    through deactivate -> activate (it keeps running) and cleanup ->
    configure -> activate (a new one), each at once while the model loads
    (the tiny preset on the CPU): exactly one afterwards."""
    from rclpy.parameter import Parameter

    from anyref_ros.nodes.anyref import AnyRefNode

    node = AnyRefNode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value="tiny"), Parameter("device", value="cpu"), Parameter("warmup", value=False)])
    try:
        cycle_activation(node, "anyref-sound-events", node.sound._worker, back=back,
                         idle=1 if back == "deactivate" else 0, active=lambda: node.model.state == "ready")
    finally:
        node.release()
        node.destroy_node()


def test_mic_capture_once_after_deactivate_and_activate(ros_context):
    """The microphone's capture thread."""
    node = mic_node(ros_context)
    try:
        cycle_activation(node, "anyref_mic_capture", node._capture)
    finally:
        node.destroy_node()


def test_mic_capture_once_after_cleanup_configure_activate(ros_context):
    node = mic_node(ros_context)
    try:
        cycle_activation(node, "anyref_mic_capture", node._capture, back="cleanup")
    finally:
        node.destroy_node()


def test_worker_reports_a_stuck_run_and_refuses_a_second_thread():
    """A run that does not stop in time: the join is reported (not ignored),
    start refuses a second thread while it lives, and starts once it ended;
    each run has its own stop event (the stuck run's stays set)."""
    release = threading.Event()
    reports: list[str] = []
    events: list[threading.Event] = []

    def body(stop: threading.Event, slow: bool) -> None:
        events.append(stop)
        if slow:
            release.wait(10.0)  # busy, not looking at stop
        stop.wait()

    worker = Worker("test-worker", body, join_timeout=0.2, report=reports.append)
    first = worker.start(True)
    assert not worker.stop()
    assert reports and "'test-worker'" in reports[0] and "has not ended" in reports[0]
    with pytest.raises(WorkerStuck, match="not starting a second one"):
        worker.start(False)
    assert len(alive("test-worker")) == 1 and first.is_set()
    release.set()
    second = worker.start(False)
    assert second is not first and first.is_set() and not second.is_set()
    assert len(alive("test-worker")) == 1 and worker.running
    assert worker.stop() and not worker.alive and second.is_set()
    assert events == [first, second]


def test_checked_join_of_a_thread_that_ends():
    t = threading.Thread(target=time.sleep, args=(0.05,), name="short")
    t.start()
    reports: list[str] = []
    assert checked_join(t, 5.0, reports.append) and reports == []
    assert checked_join(None, 0.0)
