"""The tools around the node (no ROS node of their own is started on import):

* ``demo`` (+ ``demo_grasp``): ``anyref-demo``, the node on a toy camera with
  every query type, pictures written out; the 3D answer in ``base_link``.
* ``benchmark`` (+ ``benchmark_3d``, ``overhead``): ``anyref-benchmark``, the
  figures as JSON; what an answer costs outside the network; the 3D outputs.
* ``soak``: ``anyref-soak``, sustained load on a real node.
"""
