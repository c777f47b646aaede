"""Pieces every anyref_ros node shares: parameter declaration from a table of
:class:`anyref_ros.parameters.Param`, and the process entry point (spin,
autostart, clean exit on SIGINT/SIGTERM)."""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Callable, Iterable, NoReturn, Optional, Union

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.parameter import Parameter

from anyref_ros import ros_env
from anyref_ros.parameters import Param
from anyref_ros.workers import checked_join


def descriptor(p: Param) -> ParameterDescriptor:
    """A ParameterDescriptor (description, range) for one table entry."""
    text = p.description + ("" if p.live else " (applies at the next configure/activate)")
    if p.choices:
        text += f" One of: {', '.join(p.choices)}."
    d = ParameterDescriptor(description=text)
    if isinstance(p.default, tuple):
        d.type = ParameterType.PARAMETER_DOUBLE_ARRAY if p.item is float else ParameterType.PARAMETER_STRING_ARRAY
    if p.range is not None and not isinstance(p.default, bool):
        if isinstance(p.default, int):
            d.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]), step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]), to_value=float(p.range[1]), step=0.0)]
    return d


def declare_parameters(node, params: Iterable[Param]) -> None:
    """Declare every parameter of a table on ``node``."""
    for p in params:
        if isinstance(p.default, tuple):  # an array: typed (an empty list has no type of its own)
            kind = Parameter.Type.DOUBLE_ARRAY if p.item is float else Parameter.Type.STRING_ARRAY
            node.declare_parameter(p.name, kind, descriptor(p))
            if node.get_parameter_or(p.name, None).type_ == Parameter.Type.NOT_SET:
                node.set_parameters([Parameter(p.name, kind, list(p.default))])
        else:
            node.declare_parameter(p.name, p.default, descriptor(p))


def run_node(factory: Callable[[], LifecycleNode], args: Optional[list[str]] = None, *,
             threads: Union[int, Callable[[LifecycleNode], int]] = 4,
             release: Optional[Callable[[LifecycleNode], None]] = None) -> NoReturn:
    """Create the node and spin it at once; configure + activate it (when its
    ``autostart`` parameter is true) as the executor's first task, so slow
    transitions never keep the executor from answering; spin until
    SIGINT/SIGTERM, release, and exit the process at once.

    ``threads``: executor threads, or a function of the node that returns them
    (stored on the node as ``executor_thread_count``). An exception that
    escapes a callback is logged (throttled) and the executor keeps spinning.
    """
    ros_env.configure()
    rclpy.init(args=sys.argv if args is None else args)
    node = factory()
    count = int(threads(node) if callable(threads) else threads)
    node.executor_thread_count = count
    executor = MultiThreadedExecutor(num_threads=count)
    executor.add_node(node)
    autostart = node.get_parameter("autostart").value if node.has_parameter("autostart") else True
    if autostart:
        pending = getattr(node, "autostart_pending", None)  # optional hook: "starting up" until it ran
        if pending is not None:
            pending()
        executor.create_task(_autostart, node)
    guard = _SpinGuard(node)
    try:
        while rclpy.ok():
            try:
                executor.spin_once(timeout_sec=0.5)
            except (KeyboardInterrupt, ExternalShutdownException):
                break
            except Exception as exc:  # noqa: BLE001 - a callback raised: log it, keep serving
                guard.report(exc)
    finally:
        try:
            if release is not None:
                release(node)
        except Exception as exc:  # noqa: BLE001
            node.get_logger().warning(f"release at exit failed: {exc}")
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    # Interpreter finalisation with torch loaded takes 0.5-1.5 s; everything
    # ROS held is released above, so skip it and exit well under 2 s.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _autostart(node: LifecycleNode) -> None:
    """Configure, then activate; a node that failed says why (its own log and answers)."""
    try:
        if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
    except Exception as exc:  # noqa: BLE001
        node.get_logger().error(f"autostart failed: {type(exc).__name__}: {exc}")


class _SpinGuard:
    """Logs exceptions that escaped callbacks: the first of each type with its
    traceback, then at most one line per type every 10 s with a count."""

    def __init__(self, node) -> None:
        self._node = node
        self._last: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def report(self, exc: BaseException) -> None:
        key = type(exc).__name__
        self._counts[key] = self._counts.get(key, 0) + 1
        now = time.monotonic()
        if key in self._last and now - self._last[key] < 10.0:
            return
        first = key not in self._last
        self._last[key] = now
        text = f"a callback raised {key}: {exc} ({self._counts[key]} so far); the node keeps running"
        if first:
            text += "\n" + "".join(traceback.format_exception(exc)[-8:])
        self._node.get_logger().error(text)


class ToolNode:
    """A plain rclpy node on its own context, spun by a background thread: how
    the tools (``anyref-demo``, ``anyref-soak``) talk to the nodes they start."""

    def __init__(self, name: str, threads: int = 2) -> None:
        import threading

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, name=f"{name}-spin", daemon=True)
        self._spin.start()

    def close(self) -> None:
        """Stop spinning, wait for the spin thread, then destroy the node and
        the context. A spin thread still inside its wait set when the
        interpreter exits aborts the process ("terminate called without an
        active exception", seen once at the end of a demo run; rclpy issue 1484)."""
        self.executor.shutdown(timeout_sec=5.0)
        checked_join(self._spin, 5.0, self.node.get_logger().warning)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def stop_processes(procs, timeout: float = 10.0) -> None:
    """SIGTERM every running process, then wait for each (killed after ``timeout`` s)."""
    import signal
    import subprocess

    running = [p for p in procs if p is not None and p.poll() is None]
    for p in running:
        p.send_signal(signal.SIGTERM)
    for p in running:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
