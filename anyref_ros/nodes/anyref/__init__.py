"""The ``anyref`` lifecycle node (console entry point ``anyref_node``)."""

from anyref_ros.nodes.anyref.node import AnyRefNode, main, resolve_checkpoint

__all__ = ["AnyRefNode", "main", "resolve_checkpoint"]
