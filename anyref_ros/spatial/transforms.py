"""A frame graph over time, as ROS TF keeps it (no ROS import).

:class:`TransformBuffer` stores the transforms a robot broadcasts (dynamic
ones for :data:`CACHE_S` seconds, static ones for ever) and answers
"``target`` <- ``source`` at time ``t``": the 4x4 matrix that maps points in
``source`` to ``target``, interpolated between the samples around ``t``.
The graph search, the interpolation (screw linear interpolation of the two
samples around ``t``; tf2 interpolates translation linearly and rotation by
slerp instead, and at TF rates the two agree to well under a millimetre) and
the inversions are pytransform3d's
(:class:`~pytransform3d.transform_manager.TemporalTransformManager`); this
module only keeps the samples and says why a lookup cannot be answered.

A lookup never answers with a transform of another time: a time outside the
samples of any dynamic edge on the path fails (:class:`TransformUnavailable`),
after waiting up to ``timeout`` seconds for newer samples to arrive. Time
``None`` means "the latest": each edge's newest sample.

The ROS side (``nodes/anyref/transforms.py``) feeds it from ``/tf`` and
``/tf_static`` (tf2_msgs/TFMessage) on installs without tf2_ros.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Optional, Sequence

import numpy as np
from pytransform3d.transform_manager import NumpyTimeseriesTransform, StaticTransform, TemporalTransformManager
from pytransform3d.transformations import transform_from_pq

#: Seconds of dynamic transforms kept (tf2's default buffer length).
CACHE_S = 10.0
#: Samples kept per dynamic edge at most, whatever the broadcast rate.
MAX_SAMPLES = 2000
#: Distinct edges kept at most (a sender inventing frame names cannot grow memory without bound).
MAX_EDGES = 1000


class TransformUnavailable(LookupError):
    """No transform ``target`` <- ``source`` at the asked time; the message says why."""


def describe(target: str, source: str, t: Optional[float]) -> str:
    """``"base_link <- camera_optical at 12.345 s"`` (or ``"latest"``)."""
    when = "latest" if t is None else f"{t:.3f} s"
    return f"{target} <- {source} at {when}"


def pq_from_xyz_xyzw(translation: Sequence[float], rotation_xyzw: Sequence[float]) -> np.ndarray:
    """ROS order (x, y, z) + quaternion (x, y, z, w) -> pytransform3d's pq (x, y, z, w, x, y, z)."""
    x, y, z = translation
    qx, qy, qz, qw = rotation_xyzw
    return np.array([x, y, z, qw, qx, qy, qz], dtype=np.float64)


def matrix_from_ros(translation: Sequence[float], rotation_xyzw: Sequence[float]) -> np.ndarray:
    """4x4 matrix of a ROS transform (translation, quaternion x y z w)."""
    return transform_from_pq(pq_from_xyz_xyzw(translation, rotation_xyzw))


class _WaitingCannotHelp(TransformUnavailable):
    """Asked before the samples kept, or a broken chain: waiting for more transforms cannot help."""


class _Edge:
    """Samples of one parent <- child transform."""

    def __init__(self) -> None:
        self.static: Optional[np.ndarray] = None  # pq
        self.times: deque[float] = deque(maxlen=MAX_SAMPLES)
        self.pqs: deque[np.ndarray] = deque(maxlen=MAX_SAMPLES)

    def add(self, t: float, pq: np.ndarray) -> None:
        if self.times and t <= self.times[-1]:
            if t == self.times[-1]:
                self.pqs[-1] = pq  # a re-sent sample replaces the previous one
                return
            # Out of order (several broadcasters, or a reordered message): insert in place.
            items = sorted(list(zip(self.times, self.pqs)) + [(t, pq)], key=lambda p: p[0])
            self.times = deque((s for s, _ in items), maxlen=MAX_SAMPLES)
            self.pqs = deque((p for _, p in items), maxlen=MAX_SAMPLES)
            return
        self.times.append(t)
        self.pqs.append(pq)

    def forget_before(self, t: float) -> None:
        while len(self.times) > 1 and self.times[1] <= t:  # keep one sample at or before t
            self.times.popleft()
            self.pqs.popleft()

    def transform(self, latest: bool):
        if self.static is not None:
            return StaticTransform(transform_from_pq(self.static))
        times = np.fromiter(self.times, dtype=np.float64, count=len(self.times))
        return NumpyTimeseriesTransform(times, np.stack(self.pqs), time_clipping=latest)

    @property
    def span(self) -> str:
        if self.static is not None:
            return "static"
        return f"{self.times[0]:.3f} .. {self.times[-1]:.3f} s" if self.times else "empty"


class TransformBuffer:
    """Thread-safe store of transforms; :meth:`lookup` answers at a time (see module docstring)."""

    def __init__(self, cache_s: float = CACHE_S) -> None:
        self.cache_s = float(cache_s)
        self._edges: dict[tuple[str, str], _Edge] = {}  # (child, parent) -> samples
        self._parent_of: dict[str, str] = {}
        self._cond = threading.Condition()
        self._graph: dict[bool, TemporalTransformManager] = {}  # latest? -> manager, rebuilt after a change
        self.rejected = 0  # transforms refused (non-finite, empty names, loops, too many edges)

    # ---------------------------------------------------------------- input
    def add(self, parent: str, child: str, stamp: float, translation: Sequence[float],
            rotation_xyzw: Sequence[float], static: bool = False) -> bool:
        """Store ``parent`` <- ``child`` at ``stamp`` (seconds); False (and
        counted in ``rejected``) when it cannot be a transform: empty or equal
        frame names, non-finite numbers, a zero quaternion, a second parent
        for ``child``, or more than :data:`MAX_EDGES` edges."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        pq = pq_from_xyz_xyzw(translation, rotation_xyzw)
        norm = float(np.linalg.norm(pq[3:]))
        if not parent or not child or parent == child or not np.isfinite(pq).all() \
                or not np.isfinite(stamp) or norm < 1e-6:
            self.rejected += 1
            return False
        pq[3:] /= norm
        with self._cond:
            key = (child, parent)
            edge = self._edges.get(key)
            if edge is None:
                if self._parent_of.get(child, parent) != parent or len(self._edges) >= MAX_EDGES:
                    self.rejected += 1  # a frame has one parent in TF; re-parenting is refused
                    return False
                edge = self._edges[key] = _Edge()
                self._parent_of[child] = parent
            if static:
                edge.static = pq
            else:
                edge.static = None
                edge.add(float(stamp), pq)
                edge.forget_before(float(stamp) - self.cache_s)
            self._graph.clear()
            self._cond.notify_all()
        return True

    def clear(self) -> None:
        with self._cond:
            self._edges.clear()
            self._parent_of.clear()
            self._graph.clear()

    @property
    def frames(self) -> set[str]:
        with self._cond:
            return {f for key in self._edges for f in key}

    # --------------------------------------------------------------- lookup
    def lookup(self, target: str, source: str, t: Optional[float], timeout: float = 0.0) -> np.ndarray:
        """4x4 matrix mapping points in ``source`` to ``target`` at time ``t``
        (seconds; None = latest), waiting up to ``timeout`` s for transforms
        that have not arrived yet. Raises :class:`TransformUnavailable`."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while True:
                try:
                    return self._lookup(target, source, t)
                except TransformUnavailable as exc:
                    left = deadline - time.monotonic()
                    if left <= 0 or isinstance(exc, _WaitingCannotHelp):
                        raise TransformUnavailable(f"no transform {describe(target, source, t)}: {exc}") from None
                    self._cond.wait(left)

    def _lookup(self, target: str, source: str, t: Optional[float]) -> np.ndarray:
        known = {f for key in self._edges for f in key}
        for frame in (target, source):
            if frame not in known:
                raise TransformUnavailable(f"frame {frame!r} has not been broadcast on /tf or /tf_static"
                                           + (f" (known: {', '.join(sorted(known)[:8])})" if known else ""))
        manager = self._graph.get(t is None)
        if manager is None:
            manager = self._graph[t is None] = self._build(latest=t is None)
        try:
            matrix = manager.get_transform_at_time(source, target, np.inf if t is None else float(t))
        except KeyError:
            raise TransformUnavailable(f"{source!r} and {target!r} are not connected by the transforms received "
                                       f"(tree roots: {', '.join(sorted(self._roots()))})") from None
        except ValueError:
            stale = [(parent, child, edge) for (child, parent), edge in sorted(self._edges.items())
                     if edge.static is None and edge.times and not edge.times[0] <= t <= edge.times[-1]]
            spans = "; ".join(f"{parent} <- {child} has {edge.span}" for parent, child, edge in stale[:4])
            if any(t < edge.times[0] for _, _, edge in stale):
                raise _WaitingCannotHelp(f"{t:.3f} s is older than the transforms kept ({spans}; "
                              f"the buffer keeps {self.cache_s:g} s)") from None
            raise TransformUnavailable(f"{t:.3f} s is newer than the transforms received ({spans})") from None
        if not np.isfinite(matrix).all():
            raise _WaitingCannotHelp("the transforms on the way multiply to a non-finite one (translations too large?)")
        return matrix

    def _build(self, latest: bool) -> TemporalTransformManager:
        manager = TemporalTransformManager(strict_check=False, check=False)
        for (child, parent), edge in self._edges.items():
            if edge.static is not None or edge.times:
                manager.add_transform(child, parent, edge.transform(latest))
        return manager

    def _roots(self) -> set[str]:
        return {parent for parent in self._parent_of.values() if parent not in self._parent_of}

