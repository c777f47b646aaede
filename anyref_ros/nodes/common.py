"""Pieces every anyref_ros node shares: parameter declaration from a table of
:class:`anyref_ros.parameters.Param`, and the process entry point (spin,
autostart, clean exit on SIGINT/SIGTERM)."""

from __future__ import annotations

import os
import sys
from typing import Callable, Iterable, NoReturn, Optional

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from anyref_ros import ros_env
from anyref_ros.parameters import Param


def descriptor(p: Param) -> ParameterDescriptor:
    """A ParameterDescriptor (description, range) for one table entry."""
    text = p.description + ("" if p.live else " (applies at the next configure/activate)")
    if p.choices:
        text += f" One of: {', '.join(p.choices)}."
    d = ParameterDescriptor(description=text)
    if p.range is not None and not isinstance(p.default, bool):
        if isinstance(p.default, int):
            d.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]), step=1)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]), to_value=float(p.range[1]), step=0.0)]
    return d


def declare_parameters(node, params: Iterable[Param]) -> None:
    """Declare every parameter of a table on ``node``."""
    for p in params:
        node.declare_parameter(p.name, p.default, descriptor(p))


def run_node(factory: Callable[[], LifecycleNode], args: Optional[list[str]] = None, *,
             threads: int = 4, release: Optional[Callable[[LifecycleNode], None]] = None) -> NoReturn:
    """Create the node, configure + activate it when its ``autostart`` parameter
    is true, spin until SIGINT/SIGTERM, release, and exit the process at once."""
    ros_env.configure()
    rclpy.init(args=sys.argv if args is None else args)
    node = factory()
    executor = MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    try:
        autostart = node.get_parameter("autostart").value if node.has_parameter("autostart") else True
        if autostart and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()  # on failure the node stays inactive and says why
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if release is not None:
            release(node)
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    # Interpreter finalisation with torch loaded takes 0.5-1.5 s; everything
    # ROS held is released above, so skip it and exit well under 2 s.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
