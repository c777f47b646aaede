"""Background threads of the nodes, one way (no ROS import).

A :class:`Worker` runs one thread at a time for a lifecycle node (the speech
node's recogniser, the microphone's capture loop, the anyref node's sound
events). Each run gets a stop event of its own, passed to the target as its
first argument: a run that is told to stop stays told, and a later run
never shares (or clears) an earlier run's event. Stopping joins the thread
with a timeout; a join that times out is reported (``report``, e.g. the
node's logger) and :meth:`Worker.start` refuses to start a new run while
the old thread is still alive, so one worker of a kind runs at a time:
reactivation never leaves an old run working against the new one.

:func:`checked_join` is that join for threads not owned by a Worker (a
tool's executor spin thread).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

__all__ = ["Worker", "WorkerStuck", "checked_join"]

Report = Callable[[str], Any]


class WorkerStuck(RuntimeError):
    """The previous run of a worker did not end within its join timeout."""


def checked_join(thread: Optional[threading.Thread], timeout: float, report: Optional[Report] = None) -> bool:
    """Join ``thread`` for at most ``timeout`` s; True when it has ended (or
    there is none, or it is the calling thread's own). A thread still alive
    afterwards is reported through ``report`` with its name, and False
    returned: the caller decides, the timeout is never silently ignored."""
    if thread is None or thread is threading.current_thread():
        return thread is None or not thread.is_alive()
    thread.join(max(0.0, float(timeout)))
    if not thread.is_alive():
        return True
    if report is not None:
        report(f"thread {thread.name!r} has not ended {timeout:g} s after it was told to stop; "
               "it keeps its own stop event and ends at its next check")
    return False


class Worker:
    """One background thread at a time, with a per-run stop event and a checked join.

    ``target(stop, *args)`` is the thread body; it returns when ``stop`` (a
    :class:`threading.Event` of this run only) is set. ``report`` receives a
    line when a join times out.
    """

    def __init__(self, name: str, target: Callable[..., Any], *, join_timeout: float = 5.0,
                 report: Optional[Report] = None) -> None:
        self.name = name
        self._target = target
        self.join_timeout = float(join_timeout)
        self._report = report
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stop: Optional[threading.Event] = None

    @property
    def alive(self) -> bool:
        """A thread of this worker is running (the current run, or a stuck earlier one)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def running(self) -> bool:
        """The current run is going: started, not told to stop, thread alive."""
        stop = self._stop
        return self.alive and stop is not None and not stop.is_set()

    def start(self, *args: Any) -> threading.Event:
        """Stop any earlier run (checked join), then start a new thread with a
        new stop event, which is returned. Raises :class:`WorkerStuck` when the
        earlier thread is still alive after the join timeout."""
        with self._lock:
            if not self._stop_locked(self.join_timeout):
                raise WorkerStuck(f"the previous {self.name} thread has not ended {self.join_timeout:g} s after "
                                  "it was told to stop; not starting a second one")
            stop = threading.Event()
            thread = threading.Thread(target=self._target, args=(stop, *args), name=self.name, daemon=True)
            self._thread, self._stop = thread, stop
            thread.start()
            return stop

    def request_stop(self) -> None:
        """Tell the current run to stop, without waiting."""
        stop = self._stop
        if stop is not None:
            stop.set()

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Tell the current run to stop and join it (``timeout``: the worker's
        join timeout by default). True when no thread of this worker is alive
        any more; a timeout is reported and gives False."""
        with self._lock:
            return self._stop_locked(self.join_timeout if timeout is None else timeout)

    def _stop_locked(self, timeout: float) -> bool:
        self.request_stop()
        return checked_join(self._thread, timeout, self._report)
