"""Queries on the ``query`` topic are never met by silence.

A typed or spoken query (anyref_speech transcribes onto ``query``) has no
caller waiting for a reply, so:

* while the model loads, or while every waiting place is taken ("busy"),
  the query is **kept** and asked again every :data:`RETRY_S` until it is
  answered; at most :data:`HELD_QUERIES` are kept, in the order they came,
  and a newer one pushes the oldest out (the newest wins: a person who asks
  again means the new words);
* every topic query that is not answered — pushed out, held longer than
  ``query_timeout_s``, no camera frame, bad text, an inactive node, a failed
  model call, deactivation — is published on ``~/results`` as a Referral
  with ``found: false`` and ``description`` "not answered: <why>", so a
  robot that speaks its answers can always say something.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from .support import NotYet, clip

RETRY_S = 0.25
HELD_QUERIES = 4


@dataclass
class Held:
    text: str
    since: float  # monotonic
    reason: str


class HeldQueries:
    def __init__(self, node, ask, unanswered) -> None:
        """``ask(text)`` answers a query or raises (NotYet: keep it);
        ``unanswered(text, reason)`` publishes that it was not answered."""
        self.node = node
        self.stats = node.stats
        self._ask, self._unanswered = ask, unanswered
        self._held: deque[Held] = deque()
        self._lock = threading.Lock()
        self._retrying = threading.Lock()
        self._timer = None

    def start(self, group) -> None:
        if self._timer is None:
            self._timer = self.node.create_timer(RETRY_S, self.retry, callback_group=group)

    def stop(self, reason: str) -> None:
        if self._timer is not None:
            self.node.destroy_timer(self._timer)
            self._timer = None
        self.drop_all(reason)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def hold(self, text: str, reason: str) -> None:
        """Keep ``text`` (refused for now because of ``reason``)."""
        with self._lock:
            self._held.append(Held(text, time.monotonic(), reason))
            pushed = self._held.popleft() if len(self._held) > HELD_QUERIES else None
        self.stats.inc("topic_queries_held")
        if pushed is not None:
            self._give_up(pushed, f"{HELD_QUERIES} newer queries came while it waited ({pushed.reason})")

    def drop_all(self, reason: str) -> None:
        with self._lock:
            dropped, self._held = list(self._held), deque()
        for h in dropped:
            self._give_up(h, reason)

    def retry(self) -> None:
        """Ask the held queries again, oldest first, until one has to wait again."""
        if not self._retrying.acquire(blocking=False):
            return
        try:
            limit = self.node.param("query_timeout_s")
            while True:
                with self._lock:
                    if not self._held:
                        return
                    first = self._held[0]
                if time.monotonic() - first.since > limit:
                    self._pop(first)
                    self._give_up(first, f"held {limit:g} s (query_timeout_s) without a chance: {first.reason}")
                    continue
                try:
                    self._ask(first.text)
                except NotYet as exc:
                    first.reason = str(exc)
                    return
                except Exception:  # noqa: BLE001 - ask() has published why
                    pass
                self._pop(first)
                self.stats.inc("topic_queries_answered_late")
        finally:
            self._retrying.release()

    def _pop(self, held: Held) -> None:
        with self._lock:
            if self._held and self._held[0] is held:
                self._held.popleft()

    def _give_up(self, held: Held, reason: str) -> None:
        self.stats.inc("topic_queries_dropped")
        self.node.throttle("warning", "held", f"query {clip(held.text, 60)!r} not answered: {clip(reason, 200)}")
        self._unanswered(held.text, reason)
