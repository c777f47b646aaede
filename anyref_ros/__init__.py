"""anyref_ros: find "the thing I mean" in a camera image (AnyRef, CVPR 2024).

The generated ROS interfaces (``anyref_ros.msg``, ``anyref_ros.srv``,
``anyref_ros.action``) are installed next to this package's Python code by
the CMake build. When Python runs from a source checkout, this folder shadows
the installed one; extending ``__path__`` over every ``anyref_ros`` folder on
``sys.path`` makes the generated modules importable in both cases.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
