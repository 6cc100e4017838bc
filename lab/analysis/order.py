"""Requests announced in frame order, although parsing finds them out of that order.

A request is known once its head is complete, which can be frames after its first byte
(a head split across segments, or held behind a missing segment), so a later request on
another connection may be complete first. The analysis wants both the starts and the ends
of requests in frame order (the upstream order is the order of first bytes), so
``FrameOrder`` lets an event through only when nothing still open can precede it:

- a parser in the middle of a request head, or a TCP direction holding early segments,
  ``hold``s the frame where its next request may start;
- events that may be overtaken wait in a heap until the holds before them are
  ``release``d.

In the usual capture no head spans segments and nothing is held: ``started`` and ``done``
are then the sink's own methods, so an event costs no more than the sink's work.

Memory: the holds (parsers and directions mid-head) and at most ``MAX_WAITING`` events
waiting (past that the oldest goes on regardless: a head left unfinished for that long
would otherwise stall the analysis).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lab.analysis import http

MAX_WAITING = 4096
STARTED, DONE = 0, 1


class RequestSink(Protocol):
    def started(self, request: http.HttpRequest) -> None: ...

    def done(self, request: http.HttpRequest) -> None: ...


class FrameOrder:
    """Passes ``started``/``done`` events on to ``sink`` in frame order."""

    def __init__(self, sink: RequestSink):
        self.sink = sink
        self.holds: dict[object, int] = {}  # owner -> earliest frame it may still announce
        self.waiting: list[tuple[int, int, int, http.HttpRequest]] = []  # a heap
        self._sink_started, self._sink_done = sink.started, sink.done
        self.forced = 0  # events let through because too many waited
        self._serial = 0  # keeps events of one frame in the order they were found
        # Where the parsers' events go now: straight to the sink while nothing is held
        # (the usual case), else into the heap.
        self.started: Callable[[http.HttpRequest], None] = self._sink_started
        self.done: Callable[[http.HttpRequest], None] = self._sink_done

    def hold(self, owner: object, frame: int) -> None:
        if not self.holds and not self.waiting:
            self.started, self.done = self._started_in_order, self._done_in_order
        self.holds.setdefault(owner, frame)

    def release(self, owner: object) -> None:
        if self.holds.pop(owner, None) is not None:
            self._pass_on()

    def finish(self) -> None:
        """End of capture: everything goes on."""
        self.holds.clear()
        self._pass_on()

    def _started_in_order(self, request: http.HttpRequest) -> None:
        self._wait(request.first_frame, STARTED, request)

    def _done_in_order(self, request: http.HttpRequest) -> None:
        self._wait(request.end_frame, DONE, request)

    def _wait(self, frame: int, kind: int, request: http.HttpRequest) -> None:
        self._serial += 1
        heapq.heappush(self.waiting, (frame, self._serial, kind, request))
        if len(self.waiting) > MAX_WAITING:
            self.forced += 1
            self._pass(*heapq.heappop(self.waiting)[2:])
        else:
            self._pass_on()

    def _pass_on(self) -> None:
        """Let through every event that no held head can precede."""
        limit = min(self.holds.values()) if self.holds else None
        waiting = self.waiting
        while waiting and (limit is None or waiting[0][0] <= limit):
            self._pass(*heapq.heappop(waiting)[2:])
        if not self.holds and not waiting:
            self.started, self.done = self._sink_started, self._sink_done

    def _pass(self, kind: int, request: http.HttpRequest) -> None:
        if kind == STARTED:
            self._sink_started(request)
        else:
            self._sink_done(request)
