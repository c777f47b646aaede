"""ROS 2 adapters: everything in this package imports rclpy or ROS messages.

* :mod:`anyref_ros.nodes.anyref` — the ``anyref`` node (camera, depth, audio and
  queries in; masks, descriptions, 3D positions out);
* :mod:`anyref_ros.nodes.conversions` — ROS messages <-> numpy.

Everything outside this package (``model``, ``audio``, ``engine``, ``geometry``,
``drawing``) is plain Python and usable without ROS.
"""
