"""Process environment that every anyref_ros ROS entry point sets up first,
and where this package's files are found (no ROS import).

Call :func:`configure` before ``rclpy.init``: it points Fast DDS at the
profile shipped in ``config/fastdds_profile.xml`` (big shared-memory segment,
so BEST_EFFORT camera images cross processes intact) unless the user already
chose a profile, and keeps Hugging Face libraries offline (nothing may be
fetched at run time).

Paths: :func:`share_dir` is the package's share folder; :func:`shared_file`
a file shipped there (parameter files, message definitions);
:func:`resolve_path` the one rule for a user-given file or folder (a
checkpoint, the speech grammar, a Whisper folder): absolute, relative to the
working directory, or relative to the share folder.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

PROFILE_NAME = "fastdds_profile.xml"
# Fast DDS 2.x (Jazzy) reads only the first, 3.x (Kilted and later) only the second.
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def share_dir() -> Path | None:
    """The folder holding ``config/``, ``launch/`` and ``model/`` of this package.

    A source checkout (or editable install) wins; then the ament index of a
    ROS workspace; then ``<sys.prefix>/share/anyref_ros`` of a venv install.
    """
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "config" / PROFILE_NAME).is_file():
        return checkout
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("anyref_ros"))
    except Exception:  # not in an ament workspace, or the index is not set up
        pass
    prefix_share = Path(sys.prefix) / "share" / "anyref_ros"
    if (prefix_share / "config" / PROFILE_NAME).is_file():
        return prefix_share
    return None


_KINDS = {"any": Path.exists, "file": Path.is_file, "folder": Path.is_dir}
_KIND_WORDS = {"any": "a file or folder", "file": "a regular file", "folder": "a folder"}


def kind_of(mode: int) -> str:
    """What an ``st_mode`` is, in words ("a file", "a folder", "a FIFO (named pipe)", ...)."""
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket or other special file"


def shared_file(relative: str) -> Path:
    """A file this package ships in its share folder (``config/anyref.yaml``,
    ``msg/Referral.msg``); raises FileNotFoundError if missing."""
    base = share_dir()
    path = base / relative if base else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"{relative} not found in the checkout, the ament index or {sys.prefix}/share/anyref_ros; "
            "reinstall anyref_ros (make setup, or colcon build)"
        )
    return path


def fastdds_profile() -> Path:
    """Path of the shipped Fast DDS profile; raises FileNotFoundError if missing."""
    return shared_file(f"config/{PROFILE_NAME}")


def resolve_path(value: "str | os.PathLike[str]", what: str, *, kind: str = "any") -> Path:
    """A user-given file or folder (``~`` expanded): as given (absolute, or
    relative to the working directory) if it is there, else relative to the
    package's share folder (where ``model/toy`` and ``config/`` are installed).

    ``kind``: ``"file"``, ``"folder"`` or ``"any"``; an entry of the other
    kind counts as missing. Raises FileNotFoundError naming ``what``, the
    value and both places looked in.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    found = _KINDS[kind]
    path = Path(value).expanduser()
    if found(path):
        return path
    share = share_dir()
    if share is not None and not path.is_absolute() and found(share / path):
        return share / path
    as_kind = "" if kind == "any" else f" as a {kind}"
    try:  # there, but not what is wanted (a FIFO or a device would block or never end): say what it is
        found_instead = f"; {path} is {kind_of(path.stat().st_mode)}, not {_KIND_WORDS[kind]}"
    except OSError:
        found_instead = ""
    raise FileNotFoundError(f"{what} {str(value)!r} not found{as_kind} (looked in {Path.cwd()} and "
                            f"{share or 'the package share folder'}){found_instead}")


def configure(environ: "os._Environ[str] | dict[str, str] | None" = None) -> dict[str, str]:
    """Set the variables this project's processes need, keeping the user's choices.

    Returns the variables it set (name -> value), for logging.
    """
    env = os.environ if environ is None else environ
    changed: dict[str, str] = {}
    chosen = next((env[v] for v in PROFILE_VARIABLES if env.get(v)), None)
    profile = chosen or str(fastdds_profile())
    for var in PROFILE_VARIABLES:
        if not env.get(var):
            env[var] = profile
            changed[var] = profile
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if var not in env:
            env[var] = "1"
            changed[var] = "1"
    return changed


def configure_private_graph(environ: "os._Environ[str] | dict[str, str] | None" = None) -> dict[str, str]:
    """``configure``, and for the tools that start their own nodes (``anyref-demo``,
    ``anyref-soak``) a graph of their own unless the user chose one: discovery on
    this machine only, and a random ``ROS_DOMAIN_ID`` (1..101), so they stay off
    other ROS graphs here. Returns the variables it set."""
    import random

    env = os.environ if environ is None else environ
    changed = configure(env)
    if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in env:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = changed["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if "ROS_DOMAIN_ID" not in env:
        env["ROS_DOMAIN_ID"] = changed["ROS_DOMAIN_ID"] = str(random.randint(1, 101))
    return changed
