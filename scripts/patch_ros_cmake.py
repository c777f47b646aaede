"""Point the ROS wheels' exported CMake targets at this interpreter.

The ``ros-jazzy-*`` wheels are built in a manylinux image, and their exported
``*__rosidl_generator_pyExport.cmake`` files name that image's Python and
numpy include folders. CMake then refuses the targets ("includes non-existent
path"). This rewrites those folders to the ones of the running interpreter.
Safe to run again (it only changes files that still name a missing folder).

Usage: python scripts/patch_ros_cmake.py PREFIX
"""

import re
import sys
import sysconfig
from pathlib import Path

import numpy

# A foreign interpreter's include folder: .../include/python3.X
PY_INCLUDE = re.compile(r"[^\";]*/include/python3\.\d+")
# A foreign numpy include folder: .../site-packages/numpy/_core/include
NP_INCLUDE = re.compile(r"[^\";]*/site-packages/numpy/(?:_core|core)/include")


def patch(prefix: Path) -> int:
    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    changed = 0
    for path in sorted((prefix / "share").glob("*/cmake/*.cmake")):
        text = path.read_text()
        new = PY_INCLUDE.sub(lambda m: m.group(0) if Path(m.group(0)).is_dir() else py_inc, text)
        new = NP_INCLUDE.sub(lambda m: m.group(0) if Path(m.group(0)).is_dir() else np_inc, new)
        if new != text:
            path.write_text(new)
            changed += 1
    return changed


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    n = patch(Path(sys.argv[1]))
    print(f"patched {n} CMake export file(s)")
