"""Start-up and spin shared by the helper processes in this folder."""

import rclpy
from rclpy.executors import ExternalShutdownException

from anyref_ros import ros_env


def create(name: str):
    """Set up the process like every anyref_ros entry point, then a node."""
    ros_env.configure()
    rclpy.init()
    return rclpy.create_node(name)


def spin(node) -> None:
    """Say "ready", spin until SIGINT/SIGTERM, then shut down cleanly."""
    print("ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
