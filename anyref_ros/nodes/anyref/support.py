"""Small pieces the anyref node's modules share: the error a caller gets back,
thread-safe counters, a per-key log throttle and the callback guard."""

from __future__ import annotations

import functools
import threading
import time
import traceback
from collections import Counter, deque
from typing import Any, Callable, Optional

#: Query outcomes remembered for /diagnostics ("ready" needs at least one success among them).
RECENT_OUTCOMES = 5


class QueryError(ValueError):
    """A query the node cannot answer; the message goes back to the caller."""


class Refused(QueryError):
    """Refused before any work: busy, loading or inactive (counted as refused, not failed)."""


class NotYet(Refused):
    """Refused for now only (the model is loading, or every place is taken): a
    query from the ``query`` topic is kept and asked again (:mod:`.held`)."""


def stamp_seconds(header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a log line (strings from the outside can be huge)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


class Stats:
    """Counters and the outcomes of the last queries, shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._recent: deque[tuple[bool, str]] = deque(maxlen=RECENT_OUTCOMES)

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def outcome(self, ok: bool, message: str = "") -> None:
        """A query that ran (or failed) counts in queries_ok/queries_failed and in the recent window."""
        with self._lock:
            self._counts["queries_ok" if ok else "queries_failed"] += 1
            self._recent.append((ok, clip(message, 200)))

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def failing(self) -> Optional[str]:
        """The last error when the last RECENT_OUTCOMES queries all failed, else None."""
        with self._lock:
            if len(self._recent) == self._recent.maxlen and not any(ok for ok, _ in self._recent):
                return self._recent[-1][1]
            return None

    def clear_recent(self) -> None:
        with self._lock:
            self._recent.clear()


class Recent:
    """The last ``size`` values of a measure (e.g. callback milliseconds), for percentiles."""

    def __init__(self, size: int = 1000) -> None:
        self._lock = threading.Lock()
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(value)

    def percentiles(self, *qs: float) -> list[Optional[float]]:
        with self._lock:
            values = sorted(self._values)
        if not values:
            return [None for _ in qs]
        return [values[min(len(values) - 1, int(q / 100.0 * len(values)))] for q in qs]


class Throttle:
    """Log at most once per ``period`` seconds per key; says how many were suppressed."""

    def __init__(self, logger, period: float = 5.0) -> None:
        self._logger = logger
        self._period = period
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def __call__(self, level: str, key: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e9) < self._period:
                self._suppressed[key] += 1
                return
            if len(self._last) > 256:  # keys come from code, but stay bounded anyway
                self._last.clear()
            self._last[key] = now
            skipped = self._suppressed.pop(key, 0)
        if skipped:
            message += f" ({skipped} similar messages suppressed)"
        getattr(self._logger, level)(message)


def guarded(what: str, default: Callable[..., Any] = lambda *a, **k: None):
    """Decorator for a component method used as a ROS callback: any exception is
    logged (throttled, with the traceback) and ``default(*args)`` is returned,
    so nothing escapes into the executor. The component needs ``self.log`` (a
    :class:`Throttle`) and ``self.stats``."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the point of the guard
                self.stats.inc("callback_errors")
                self.log("error", f"guard:{what}",
                         f"{what} callback raised {type(exc).__name__}: {clip(exc, 300)}\n{traceback.format_exc(limit=6)}")
                return default(*args, **kwargs)

        return inner

    return wrap
