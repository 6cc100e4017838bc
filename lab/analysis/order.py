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

In the usual capture no head spans segments and nothing is held: events go straight on.
Either way they reach the sink in batches of ``BATCH``: the sink's work on one batch, then
the parsers' on the next packets, keeps each in the processor's caches (~20% faster
than event by event). The sink sees the requests as they are when the batch is passed
on; it wants nothing that changes later (a request's head, first frame, and once it is
done, the rest).

Memory: the holds (parsers and directions mid-head), at most ``MAX_WAITING`` events
waiting (past that the oldest goes on regardless: a head left unfinished for that long
would otherwise stall the analysis), and one batch.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lab.analysis import http

MAX_WAITING = 4096
BATCH = 512
STARTED, DONE = 0, 1


class RequestSink(Protocol):
    def started(self, request: http.HttpRequest) -> None: ...

    def done(self, request: http.HttpRequest) -> None: ...


class FrameOrder:
    """Passes ``started``/``done`` events on to ``sink`` in frame order, in batches."""

    def __init__(self, sink: RequestSink):
        self.sink = sink
        self.holds: dict[object, int] = {}  # owner -> earliest frame it may still announce
        self.waiting: list[tuple[int, int, int, http.HttpRequest]] = []  # a heap
        self.batch: list[tuple[Callable, http.HttpRequest]] = []  # (sink method, request)
        self._sink_started, self._sink_done = sink.started, sink.done
        self.forced = 0  # events let through because too many waited
        self._serial = 0  # keeps events of one frame in the order they were found
        # Where the parsers' events go now: straight into the batch while nothing is held
        # (the usual case), else into the heap.
        self.started: Callable[[http.HttpRequest], None] = self._started_in_batch
        self.done: Callable[[http.HttpRequest], None] = self._done_in_batch

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
        self._pass_batch()

    def _started_in_batch(self, request: http.HttpRequest) -> None:
        batch = self.batch
        batch.append((self._sink_started, request))
        if len(batch) >= BATCH:
            self._pass_batch()

    def _done_in_batch(self, request: http.HttpRequest) -> None:
        batch = self.batch
        batch.append((self._sink_done, request))
        if len(batch) >= BATCH:
            self._pass_batch()

    def _pass_batch(self) -> None:
        for sink_method, request in self.batch:
            sink_method(request)
        self.batch.clear()

    def _started_in_order(self, request: http.HttpRequest) -> None:
        self._wait(request.first_frame, STARTED, request)

    def _done_in_order(self, request: http.HttpRequest) -> None:
        self._wait(request.end_frame, DONE, request)

    def _wait(self, frame: int, kind: int, request: http.HttpRequest) -> None:
        self._serial += 1
        heapq.heappush(self.waiting, (frame, self._serial, kind, request))
        if len(self.waiting) > MAX_WAITING:
            self.forced += 1
            _, _, kind, request = heapq.heappop(self.waiting)
            self.batch.append((self._sink_started if kind == STARTED else self._sink_done,
                               request))
        else:
            self._pass_on()

    def _pass_on(self) -> None:
        """Let through every event that no held head can precede."""
        limit = min(self.holds.values()) if self.holds else None
        waiting = self.waiting
        while waiting and (limit is None or waiting[0][0] <= limit):
            _, _, kind, request = heapq.heappop(waiting)
            self.batch.append((self._sink_started if kind == STARTED else self._sink_done,
                               request))
        if len(self.batch) >= BATCH:
            self._pass_batch()
        if not self.holds and not waiting:
            self.started, self.done = self._started_in_batch, self._done_in_batch
