"""Standing queries: what the node is asked to watch on every frame (no ROS import).

A :class:`WatchList` holds the standing queries: from the ``watch``
parameter (one per text, keyed by the text: changing the list keeps the ids
of the texts that stay) or added one by one (text and/or an exemplar, an
optional name). Each keeps, for its whole life:

* an ``id`` ("w1", "w2", ...: never reused while the node runs), the id of
  its detections;
* a ``label``, the value of its pixels in the label image: the smallest
  label (1, 2, ...) free when it was added, so k standing queries use 1..k.

:meth:`WatchList.observe` follows each one's found / lost state: found on a
frame where it was found; lost after ``lost_after`` frames in a row without
it; the changes are returned for the log and the counters.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

MAX_LABEL = 65535  # mono16 label image


@dataclass
class Standing:
    id: str
    label: int
    text: Optional[str] = None
    exemplar: Optional[np.ndarray] = field(default=None, repr=False)
    exemplar_mask: Optional[np.ndarray] = field(default=None, repr=False)
    name: str = ""
    from_parameter: bool = False
    found: bool = False
    ever_found: bool = False
    missed: int = 0

    @property
    def class_name(self) -> str:
        """What consumers see as its class: its name, else its text, else "exemplar <id>"."""
        return self.name or self.text or f"exemplar {self.id}"


class WatchList:
    """Thread-safe list of standing queries (see the module docstring)."""

    def __init__(self) -> None:
        self._items: dict[str, Standing] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.version = 0  # changes whenever the list changes (labels to republish)

    def snapshot(self) -> list[Standing]:
        with self._lock:
            return list(self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def get(self, key: str) -> Optional[Standing]:
        """By id or by name."""
        with self._lock:
            return self._items.get(key) or next((s for s in self._items.values() if s.name and s.name == key), None)

    def add(self, max_watch: int, text: Optional[str] = None, exemplar=None, exemplar_mask=None, name: str = "",
            from_parameter: bool = False) -> Standing:
        """A new standing query; ValueError when ``max_watch`` are already watched
        or the name is taken. ``text``/``exemplar`` are checked by the caller."""
        with self._lock:
            if len(self._items) >= max_watch:
                raise ValueError(f"already watching {len(self._items)} standing queries (max_watch={max_watch}); "
                                 "remove one first")
            if name and any(s.name == name for s in self._items.values()):
                raise ValueError(f"a standing query is already named {name!r}")
            used = {s.label for s in self._items.values()}
            label = next(k for k in range(1, MAX_LABEL + 1) if k not in used)
            item = Standing(id=f"w{next(self._ids)}", label=label, text=text, exemplar=exemplar,
                            exemplar_mask=exemplar_mask, name=name, from_parameter=from_parameter)
            self._items[item.id] = item
            self.version += 1
            return item

    def remove(self, key: str) -> Optional[Standing]:
        with self._lock:
            item = self._items.get(key) or next((s for s in self._items.values() if s.name and s.name == key), None)
            if item is not None:
                del self._items[item.id]
                self.version += 1
            return item

    def parameter_changes(self, texts: list[str]) -> tuple[list[str], list[Standing]]:
        """For the ``watch`` parameter's new value: the texts to add and the
        standing queries (from the parameter) to remove; blank entries and
        repeats are ignored."""
        wanted = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
        with self._lock:
            current = {s.text: s for s in self._items.values() if s.from_parameter}
        return [t for t in wanted if t not in current], [s for t, s in current.items() if t not in wanted]

    def observe(self, item: Standing, found: bool, lost_after: int) -> Optional[str]:
        """Record one frame's answer; "found" or "lost" when the state changes."""
        with self._lock:
            if found:
                item.missed = 0
                item.ever_found = True
                if not item.found:
                    item.found = True
                    return "found"
                return None
            item.missed += 1
            if item.found and item.missed >= lost_after:
                item.found = False
                return "lost"
            return None
