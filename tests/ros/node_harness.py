"""Drive a running anyref node from a test: service and action calls, topic
listeners, all on one rclpy context and a background executor."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data

from testsupport import HELPERS, collect_output

REPO = Path(__file__).resolve().parents[2]


#: Node processes started by :func:`start_node`, newest last: a failing test's report
#: shows their last log lines (tests/conftest.py), since CI keeps only pytest's output.
STARTED: list[subprocess.Popen] = []


def start_node(*ros_args: str, namespace: str = "/robot", env: Optional[dict] = None,
               faults: Optional[str] = None) -> subprocess.Popen:
    """The real console entry point in its own process (``env``: extra variables).
    ``faults``: a test fault plan (tests/faults.py), installed by the test-only
    entry point tests/helpers/faulty_anyref_node.py, which then runs the node's main.
    Its output is collected as it comes (``proc.output``; all of it: :func:`output_of`)."""
    if faults is None:
        entry = [str(Path(sys.executable).with_name("anyref_node"))]
    else:
        entry = [sys.executable, str(HELPERS / "faulty_anyref_node.py"), faults]
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    cmd = [*entry, "--ros-args", "--params-file", str(REPO / "config" / "anyref.yaml"),
           "-r", f"__ns:={namespace}", *ros_args]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    collect_output(proc)
    STARTED.append(proc)
    del STARTED[:-4]
    return proc


def output_of(proc: subprocess.Popen, timeout: float = 5.0) -> str:
    """Everything ``proc`` wrote (read to the end once it has exited)."""
    if proc.poll() is not None:
        proc.output_reader.join(timeout)
    return "\n".join(proc.output)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> float:
    """Send ``sig`` and return how long the process took to exit."""
    t = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.monotonic() - t


def anyref_status(diags: list, after: int = 0):
    """The latest anyref status in ``diags[after:]`` as (level, message, values), or None."""
    for d in reversed(diags[after:]):
        for s in d.status:
            if s.name.startswith("anyref"):
                return s.level, s.message, {kv.key: kv.value for kv in s.values}
    return None


def status_count(diags: list, key: str) -> int:
    """A counter of the latest anyref status (0 before the first status)."""
    s = anyref_status(diags)
    return int(s[2].get(key, 0)) if s else 0


# The state each transition starts from and ends in (on success).
LIFECYCLE_SOURCES = {"configure": "unconfigured", "activate": "inactive", "deactivate": "active",
                     "cleanup": "inactive"}
LIFECYCLE_TARGETS = {"configure": "inactive", "activate": "active", "deactivate": "inactive",
                     "cleanup": "unconfigured"}


class Client:
    """Service/action/topic access to the node under ``namespace``/anyref.

    One executor thread does all the client-side work: calls made from test
    threads are handed to it (:meth:`run`), because rclpy's ActionClient
    registers a request only after sending it and loses the answer if another
    thread processes it first."""

    def __init__(self, context, namespace: str = "/robot") -> None:
        self.node = rclpy.create_node("anyref_test_client", context=context)
        self.base = f"{namespace}/anyref"
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self._received: dict[str, list] = {}
        self.unanswered = 0  # service calls that got no response within their timeout (wait_loaded retries)

    def service(self, srv_type, name: str, timeout: float = 60.0):
        client = self.node.create_client(srv_type, f"{self.base}/{name}")
        assert client.wait_for_service(timeout_sec=timeout), f"{self.base}/{name} did not appear"
        # wait_for_service sees the server's request reader; the server's response writer may
        # not have matched this client's reader yet, and a response sent before that is lost
        # (DDS, volatile). Give discovery a moment before the first call.
        time.sleep(0.5)
        return client

    def run(self, start, timeout: float = 120.0):
        """Run ``start()`` (which returns an rclpy Future) on the executor thread; its result."""

        async def task():
            return await start()

        return wait_future(self.executor.create_task(task), timeout)

    def call(self, client, request, timeout: float = 120.0, retry_after: Optional[float] = 30.0):
        """The response to ``request``. A call with no response after ``retry_after``
        seconds is sent again (counted in ``unanswered``): on a loaded machine a response
        can be lost while discovery settles (see ``service``). None: never resent (for
        requests that must not run twice, such as lifecycle transitions)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            attempt = left if retry_after is None else min(left, retry_after)
            try:
                return self.run(lambda: client.call_async(request), attempt)
            except AssertionError:
                if time.monotonic() >= deadline - 0.01:
                    raise
                self.unanswered += 1

    def send_goal(self, client, goal, feedback_callback=None, timeout: float = 60.0):
        return self.run(lambda: client.send_goal_async(goal, feedback_callback=feedback_callback), timeout)

    def goal_result(self, handle, timeout: float = 120.0):
        return self.run(handle.get_result_async, timeout)

    def cancel(self, handle, timeout: float = 60.0):
        return self.run(handle.cancel_goal_async, timeout)

    def action(self, action_type, name: str, timeout: float = 60.0) -> ActionClient:
        client = ActionClient(self.node, action_type, f"{self.base}/{name}")
        assert client.wait_for_server(timeout_sec=timeout), f"{self.base}/{name} action did not appear"
        return client

    def listen(self, msg_type, topic: str, sensor: bool = False) -> list:
        """Messages arriving on ``topic`` are appended to the returned list."""
        got: list = []
        self.node.create_subscription(msg_type, topic, got.append, qos_profile_sensor_data if sensor else 10)
        self._received[topic] = got
        return got

    @staticmethod
    def wait_for(predicate, timeout: float = 30.0, what: str = "condition", resend=None, every: float = 1.0) -> Any:
        """Until ``predicate()`` is truthy (its value). ``resend``: called first and again every
        ``every`` seconds, for a message that can be lost (BEST_EFFORT, or sent before its
        subscription matched) and must be sent until its effect is seen."""
        deadline = time.monotonic() + timeout
        sent = -float("inf")
        while time.monotonic() < deadline:
            if resend is not None and time.monotonic() - sent >= every:
                resend()
                sent = time.monotonic()
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def wait_loaded(self, timeout: float = 120.0):
        """Until the node's answers no longer say "loading the model" (an empty
        request is refused for what it is once the model is there); that answer."""
        from anyref_ros.srv import Segment

        seg = self.service(Segment, "segment")

        def loaded():
            try:
                r = self.call(seg, Segment.Request(), timeout=10.0)
            except AssertionError:  # no response in 10 s: ask again (counted, see below)
                self.unanswered += 1
                return None
            return not r.message.startswith("loading the model") and r

        return self.wait_for(loaded, timeout, "the model to load")

    def lifecycle_state(self, timeout: float = 30.0) -> str:
        from lifecycle_msgs.srv import GetState

        client = self._lifecycle_client(GetState, "get_state", timeout)
        return self.call(client, GetState.Request(), timeout).current_state.label

    def lifecycle_ready(self, timeout: float = 30.0) -> None:
        """Set up the lifecycle callers (get_state, change_state) and ask the state once,
        so a later, timed call does not include a new caller's discovery."""
        from lifecycle_msgs.srv import ChangeState

        self._lifecycle_client(ChangeState, "change_state", timeout)
        self.lifecycle_state(timeout)

    def lifecycle_set(self, transition: str, timeout: float = 60.0) -> bool:
        """``configure``, ``activate``, ``deactivate``, ``cleanup``; True on success."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP}
        client = self._lifecycle_client(ChangeState, "change_state", timeout)
        request = ChangeState.Request()
        request.transition.id = ids[transition]
        # A transition must not run twice, so a lost response (see ``service``) is not
        # simply resent: after 15 s without one, the node's state says whether it ran.
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.call(client, request, min(15.0, max(deadline - time.monotonic(), 1.0)),
                                 retry_after=None).success
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise
                self.unanswered += 1
            state = self.lifecycle_state()
            if state == LIFECYCLE_TARGETS[transition]:
                return True
            if state != LIFECYCLE_SOURCES[transition]:  # still in the transition: wait for it
                self.wait_for(lambda: self.lifecycle_state() in (LIFECYCLE_TARGETS[transition],
                                                                 LIFECYCLE_SOURCES[transition]),
                              max(deadline - time.monotonic(), 1.0), f"the {transition} transition to end")
                if self.lifecycle_state() == LIFECYCLE_TARGETS[transition]:
                    return True

    def _lifecycle_client(self, srv_type, name: str, timeout: float):
        key = f"lifecycle/{name}"
        if key not in self._received:
            self._received[key] = self.service(srv_type, name, timeout)
        return self._received[key]

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self._thread.join(5.0)  # (rclpy's shutdown does not wait for spin to return)
        self.node.destroy_node()


def wait_future(future, timeout: float = 60.0) -> Optional[Any]:
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(timeout), "future not done"
    return future.result()


def scene_switcher(client: "Client", namespace: str):
    """A function ``show(text)`` that asks the toy camera helper (tests/helpers/toy_camera.py)
    to show scene ``text`` ("TASK INDEX") and waits for its acknowledgement; the request is
    repeated until acknowledged (a first ack may go out before the subscription is matched)."""
    from std_msgs.msg import String

    acks: list = client.listen(String, f"{namespace}/camera/scene_ack")
    scene = client.node.create_publisher(String, f"{namespace}/camera/scene", 10)
    client.wait_for(lambda: scene.get_subscription_count() > 0, 30, "the toy camera")

    def show(text: str) -> float:
        """Returns the ROS time (s) the acknowledgement was seen: frames stamped later show the scene."""
        client.wait_for(lambda: text in [a.data for a in acks], 30, f"the camera to show {text}",
                        resend=lambda: scene.publish(String(data=text)), every=2.0)
        return client.node.get_clock().now().nanoseconds * 1e-9

    return show


@contextlib.contextmanager
def client_context(namespace: str):
    """A :class:`Client` on its own rclpy context, closed afterwards."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    c = Client(ctx, namespace=namespace)
    try:
        yield c
    finally:
        c.close()
        rclpy.try_shutdown(context=ctx)


def set_param(client: "Client", name: str, value: "str | float") -> None:
    """Set a string or double parameter of the anyref node (asserts it was taken)."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    srv = client.service(SetParameters, "set_parameters")
    value_msg = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value) if isinstance(value, str) \
        else ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=float(value))
    param = Parameter(name=name, value=value_msg)
    response = client.call(srv, SetParameters.Request(parameters=[param]))
    assert response.results[0].successful, response.results[0].reason


def audio_player(folder, topic: str, rate: int):
    """A function ``play(samples, name)`` that publishes ``samples`` ((n,) or
    (n, channels) float32 at ``rate``) on ``topic`` in real time from the
    audio publisher helper (tests/helpers/audio_publisher.py), returning once
    it is done with the ROS time of the first sample."""
    import numpy as np

    from testsupport import spawn_helper, stop_process

    def play(samples, name: str) -> float:
        path = folder / f"{name}.npy"
        np.save(path, np.asarray(samples, dtype=np.float32))
        proc = spawn_helper("audio_publisher", topic, str(path), str(rate))
        start = None
        deadline = time.monotonic() + 60 + len(samples) / rate
        for line in proc.stdout:
            if line.startswith("start "):
                start = float(line.split()[1])
            if line.strip() == "done" or time.monotonic() > deadline:
                break
        stop_process(proc)
        assert start is not None, "the audio publisher did not start"
        return start

    return play


@contextlib.contextmanager
def toy_node(namespace: str, *ros_args: str):
    """The node on model/toy (CPU, no warm-up) in its own process, a :class:`Client`
    on its own context, the model loaded; everything stopped afterwards."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = start_node("-p", "checkpoint:=model/toy", "-p", "device:=cpu", "-p", "warmup:=false", *ros_args,
                      namespace=namespace)
    client = Client(ctx, namespace=namespace)
    try:
        client.wait_loaded()
        yield client
    finally:
        client.close()
        stop(node)
        rclpy.try_shutdown(context=ctx)
