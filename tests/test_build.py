"""The package builds as a ROS 2 workspace would build it (colcon runs the
same CMake with ANYREF_INSTALL_PYTHON=ON), and the result imports outside the
checkout: Python code, generated interfaces, the Fast DDS profile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport import REPO, child_env


@pytest.mark.timeout(600)
def test_cmake_workspace_build_installs_code_and_interfaces(tmp_path):
    venv = Path(sys.prefix)
    # A workspace of its own, as colcon would have it: src/anyref_ros, build/, install/.
    src, prefix, build = tmp_path / "src" / "anyref_ros", tmp_path / "install", tmp_path / "build"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", ".pytest_cache"))
    env = child_env(AMENT_PREFIX_PATH=str(venv), CMAKE_PREFIX_PATH=str(venv))
    configure = [
        "cmake", "-S", str(src), "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}",
        f"-DCMAKE_INSTALL_PREFIX={prefix}", "-DBUILD_TESTING=OFF", "-DANYREF_INSTALL_PYTHON=ON",
    ]
    for cmd in (configure, ["cmake", "--build", str(build), f"-j{os.cpu_count() or 2}"], ["cmake", "--install", str(build)]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd[:2])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert (site / "anyref_ros" / "nodes" / "conversions.py").is_file()
    assert (prefix / "lib" / "anyref_ros" / "anyref_node").is_file()
    assert (prefix / "share" / "anyref_ros" / "config" / "fastdds_profile.xml").is_file()

    run_env = child_env(
        PYTHONPATH=str(site),
        AMENT_PREFIX_PATH=f"{prefix}{os.pathsep}{venv}",
        LD_LIBRARY_PATH=f"{prefix / 'lib'}{os.pathsep}{os.environ.get('LD_LIBRARY_PATH', '')}",
    )
    run_env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    code = (
        "import anyref_ros, anyref_ros.msg, anyref_ros.srv, anyref_ros.action\n"
        "from anyref_ros import ros_env\n"
        "from anyref_ros.msg import Referral\n"
        "print(anyref_ros.__file__)\n"
        "print(ros_env.fastdds_profile())\n"
        "print(Referral().mask.encoding == '')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=run_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    init_file, profile, ok = out.stdout.split()
    assert Path(init_file).is_relative_to(site), init_file
    assert Path(profile).is_relative_to(prefix), profile
    assert ok == "True"
    shutil.rmtree(build, ignore_errors=True)
