"""Everything the verdict needs, brought up to date request by request.

``Tally`` receives each HTTP request twice, in frame order (see ``lab.analysis.order``):
when it starts and when it is done. It keeps no list of requests: per route (client,
server, server port) a few counters, and for the whole capture the reduced upstream
sequence, the pairing state, the overlap watch and the first ``flow_limit`` exchanges.
What it holds grows with the routes and with the requests in flight, not with the file.

Which requests are client→balancer and which balancer→app depends on where the balancer
is, and that is only certain at the end. So the first ``WARMUP`` requests wait while the
routes they took point out the balancer; then they are replayed and the rest follow as
they come. At the end the roles are found again from every route; ``analyse`` reads the
capture a second time, with the right roles, in the rare capture where they differ.
"""

from __future__ import annotations

from collections import Counter
from typing import TextIO

from lab.analysis.errors import CaptureError
from lab.analysis.http import (
    USUAL_X_REQUEST_ID,
    USUAL_X_SERVED_BY,
    X_REQUEST_ID,
    X_SERVED_BY,
    HttpRequest,
    header_value,
)
from lab.analysis.pairing import Pairer, Pairing
from lab.analysis.roles import CLIENT, UPSTREAM, Roles, Route, find_roles
from lab.analysis.rotation import UpstreamSequence
from lab.analysis.timing import Latencies
from lab.analysis.traffic import OverlapWatch

WARMUP = 1000  # requests that wait for the roles to be found
MAX_WARMUP = 16 * 1024  # with still no balancer in sight, stop waiting: read twice
STARTED, DONE = 0, 1
NEITHER = "neither"  # a request that is neither client→balancer nor balancer→app
MANY = object()  # a backend that answered with more than one X-Served-By value


class RouteStats:
    """What is counted per route; ``side`` is None until the roles are known."""

    __slots__ = ("route", "requests", "side", "served_by", "served_by_line", "latencies",
                 "with_id", "upstream_line")

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests = 0
        self.side: str | None = None
        self.served_by: bytes | object | None = None  # the X-Served-By value, or MANY
        # That header line as usually spelt, to check each response with one find. First
        # something header lines never hold (so the value is read); b"" (always found) once
        # the backend named itself in more than one way.
        self.served_by_line = b"\r\n\r\n"
        self.latencies = Latencies()
        self.with_id = 0  # requests carrying X-Request-ID
        _, server, port = route
        self.upstream_line = f"{server}\t{port}\n"  # its line in the upstream list


class Side:
    """Counts for one side: client→balancer or balancer→app."""

    def __init__(self) -> None:
        self.requests = 0
        self.statuses = [0] * 600  # status -> requests; [0]: no response
        self.overlap = OverlapWatch()
        self.watching: OverlapWatch | None = self.overlap  # None once it found overlap

    def watch_done(self, request: HttpRequest) -> None:
        """Watch for overlap until it is found."""
        self.watching.done(request)
        if self.watching.concurrent:
            self.watching = None

    def status_counts(self) -> dict[str, int]:
        counts = {str(status) if status else "none": count
                  for status, count in enumerate(self.statuses) if count}
        return dict(sorted(counts.items()))


class Tally:
    """The sink of the request events: see the module's docstring."""

    def __init__(self, path: str, flow_limit: int = 0, roles: Roles | None = None,
                 upstream_log: TextIO | None = None):
        self.path = path
        self.flow_limit = max(flow_limit, 0)
        self.roles = roles  # None until found from the first requests
        self.upstream_log = upstream_log
        self.routes: dict[Route, RouteStats] = {}
        self.client = Side()
        self.upstream = Side()
        self.sequence = UpstreamSequence()  # of the RouteStats of upstream routes
        self.pairer = Pairer()
        self.flow_clients: list[HttpRequest] = []  # the first flow_limit of each side
        self.flow_upstream: list[HttpRequest] = []
        self.partners: dict[HttpRequest, HttpRequest] = {}  # of those client requests
        self.waited = 0  # requests that waited for the roles
        self._warmup: list[tuple[int, HttpRequest]] | None = [] if roles is None else None
        self.warmup_dropped = False  # no balancer in sight for too long: read again

    # -- the sink --------------------------------------------------------------------

    # started() and done() run for every request: each side's work is inline in them.

    def started(self, request: HttpRequest) -> None:
        route = request.route.counted
        if route is None:
            route = request.route.counted = self._stats_of(request.route.key)
        route.requests += 1
        side = route.side
        if side is UPSTREAM:
            upstream = self.upstream
            upstream.requests += 1
            if upstream.watching is not None:
                upstream.watching.started(request)
            self.sequence.add(route, request.first_frame)
            request_id = header_value(request.head, USUAL_X_REQUEST_ID, X_REQUEST_ID)
            self.pairer.upstream_started(request, request_id)
            if request_id:
                route.with_id += 1
            if len(self.flow_upstream) < self.flow_limit:
                self.flow_upstream.append(request)
            if self.upstream_log is not None:
                self.upstream_log.write(route.upstream_line)
        elif side is CLIENT:
            client = self.client
            client.requests += 1
            if client.watching is not None:
                client.watching.started(request)
            self.pairer.client_started(request)
            if len(self.flow_clients) < self.flow_limit:
                self.flow_clients.append(request)
        elif side is None:
            self._wait_for_roles(STARTED, request)

    def done(self, request: HttpRequest) -> None:
        route = request.route.counted
        side = route.side
        if side is UPSTREAM:
            upstream = self.upstream
            upstream.statuses[request.status or 0] += 1
            if upstream.watching is not None:
                upstream.watch_done(request)
            head = request.response_head
            if head is not None and head.find(route.served_by_line) < 0:  # not as usual
                self._served_by(request, route)
            if request.response_ts is not None:
                wait = (request.response_ts - request.last_ts) * 1000
                route.latencies.add(wait if wait > 0 else 0.0)
        elif side is CLIENT:
            client = self.client
            client.statuses[request.status or 0] += 1
            if client.watching is not None:
                client.watch_done(request)
            partner = self.pairer.client_done(request)
            if partner is not None and self.flow_clients and self._in_flow(request):
                self.partners[request] = partner
        elif side is None:
            self._wait_for_roles(DONE, request)

    def finish(self) -> Roles:
        """The end of the capture: the roles found from every route (CaptureError if none).

        When they differ from the roles used, this tally is wrong: read again with them.
        """
        if not self.routes:
            raise CaptureError(f"no HTTP/1.x requests in capture {self.path}")
        counts = Counter({route: stats.requests for route, stats in self.routes.items()})
        roles = find_roles(counts, self.path)
        if self.roles is None and not self.warmup_dropped:
            self._decide(roles)
        return roles

    def pairing(self) -> Pairing:
        return self.pairer.finish() if self.client.requests else Pairing()

    # -- roles -----------------------------------------------------------------------

    def _stats_of(self, route: Route) -> RouteStats:
        stats = self.routes.get(route)
        if stats is None:
            stats = self.routes[route] = RouteStats(route)
            if self.roles is not None:
                stats.side = self.roles.side(route) or NEITHER
        return stats

    def _wait_for_roles(self, kind: int, request: HttpRequest) -> None:
        if self._warmup is None:
            return  # dropped: the second reading will count it
        self._warmup.append((kind, request))
        if kind == STARTED:
            self.waited += 1
            if self.waited % WARMUP == 0:
                self._try_roles()

    def _try_roles(self) -> None:
        counts = Counter({route: stats.requests for route, stats in self.routes.items()})
        try:
            roles = find_roles(counts, self.path)
        except CaptureError:
            if len(self._warmup) > MAX_WARMUP:
                self._warmup = None
                self.warmup_dropped = True
            return
        self._decide(roles)

    def _decide(self, roles: Roles) -> None:
        self.roles = roles
        for route, stats in self.routes.items():
            stats.side = roles.side(route) or NEITHER
        waiting, self._warmup = self._warmup or [], None
        for kind, request in waiting:
            if kind == DONE:
                self.done(request)
            else:
                request.route.counted.requests -= 1  # counted when it came
                self.started(request)

    # -- each side -------------------------------------------------------------------

    def _served_by(self, request: HttpRequest, route: RouteStats) -> None:
        """A backend's response says X-Served-By anew (or differently): the backend is named
        after it while it always says the same (``request.served_by``, as bytes)."""
        served_by = header_value(request.response_head, USUAL_X_SERVED_BY, X_SERVED_BY)
        if served_by is None or served_by == route.served_by:
            return
        if route.served_by is None:
            route.served_by = served_by
            route.served_by_line = USUAL_X_SERVED_BY + b" " + served_by + b"\r\n"
        else:
            route.served_by, route.served_by_line = MANY, b""

    def _in_flow(self, request: HttpRequest) -> bool:
        kept = self.flow_clients
        return request.first_frame <= kept[-1].first_frame and request in kept
