"""Sequential or concurrent: did a request start while another one was in flight?

A request is in flight from its first byte to the end of its exchange (its response's last
byte, or as far as its response was seen, or without one its own last byte). That end is
known only when the request is done, possibly late (its connection closed much later), so
each request in flight remembers the first start that came after its own: it overlapped
the traffic if it ended after that start. Memory: the requests in flight; nothing once
traffic is found concurrent.
"""

from __future__ import annotations

from lab.analysis.http import HttpRequest

SEQUENTIAL, CONCURRENT = "sequential", "concurrent"


class OverlapWatch:
    """Feed it one side's requests in frame order; ``concurrent`` tells the answer."""

    def __init__(self) -> None:
        self.concurrent = False
        self.in_flight: dict[HttpRequest, int | None] = {}  # -> first start after it
        self.last_started: list[HttpRequest] = []  # in flight, no start after them yet

    def started(self, request: HttpRequest) -> None:
        if self.concurrent:
            return
        for earlier in self.last_started:
            if earlier in self.in_flight:
                self.in_flight[earlier] = request.first_frame
        self.last_started = [request]
        self.in_flight[request] = None

    def done(self, request: HttpRequest) -> None:
        if self.concurrent:
            return
        next_start = self.in_flight.pop(request, None)
        if next_start is not None and request.end_frame > next_start:
            self.concurrent = True
            self.in_flight.clear()
            self.last_started = []

    @property
    def kind(self) -> str:
        return CONCURRENT if self.concurrent else SEQUENTIAL
