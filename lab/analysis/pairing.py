"""Pair each client→balancer request with the balancer→app request it caused."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

from lab.analysis.http import HttpRequest

BY_REQUEST_ID = "x-request-id"
BY_METHOD_URI_TIME = "method+uri+time"


@dataclass
class Pairing:
    pairs: list[tuple[HttpRequest, HttpRequest]] = field(default_factory=list)  # client, up
    by: dict[str, int] = field(default_factory=dict)  # pairing method -> pairs made by it
    unmatched_client: list[HttpRequest] = field(default_factory=list)
    unmatched_upstream: list[HttpRequest] = field(default_factory=list)
    retries: int = 0  # further upstream requests carrying an X-Request-ID already paired

    @property
    def method(self) -> str:
        used = [name for name, count in self.by.items() if count]
        if not used:
            return "none"
        return used[0] if len(used) == 1 else "mixed"


def pair_requests(client: list[HttpRequest], upstream: list[HttpRequest]) -> Pairing:
    """Pair by X-Request-ID where the client side shows one, else by method+URI in time.

    nginx adds X-Request-ID only to the upstream request; the client side carries the same
    id only if the client sent it or nginx echoes it in the response (add_header).
    """
    pairing = Pairing(by={BY_REQUEST_ID: 0, BY_METHOD_URI_TIME: 0})
    client_left, upstream_left = _pair_by_request_id(client, upstream, pairing)
    _pair_by_method_uri_time(client_left, upstream_left, pairing)
    pairing.pairs.sort(key=lambda pair: pair[0].first_frame)
    return pairing


def _pair_by_request_id(client, upstream, pairing):
    by_id: dict[str, list[HttpRequest]] = defaultdict(list)
    for request in upstream:
        if request.request_id:
            by_id[request.request_id].append(request)
    used: set[int] = set()
    client_left = []
    for request in client:
        request_id = request.request_id or request.response_request_id
        candidates = [c for c in by_id.get(request_id or "", ()) if id(c) not in used]
        if not candidates:
            client_left.append(request)
            continue
        pairing.pairs.append((request, candidates[0]))
        pairing.retries += len(candidates) - 1  # nginx tried more than one backend
        pairing.by[BY_REQUEST_ID] += 1
        used.update(id(candidate) for candidate in candidates)
    return client_left, [request for request in upstream if id(request) not in used]


def _pair_by_method_uri_time(client, upstream, pairing) -> None:
    """Walk both sides in capture order; an upstream request takes the oldest waiting
    client request with the same method and URI that has not been answered yet."""
    events = sorted(
        [(request.first_frame, 0, request) for request in client]
        + [(request.first_frame, 1, request) for request in upstream],
        key=lambda event: event[:2],
    )
    waiting: dict[tuple[str, str], deque[HttpRequest]] = defaultdict(deque)
    for frame, is_upstream, request in events:
        queue = waiting[(request.method, request.uri)]
        if not is_upstream:
            queue.append(request)
            continue
        while queue and _answered_before(queue[0], frame):
            pairing.unmatched_client.append(queue.popleft())  # answered by nginx itself
        if queue:
            pairing.pairs.append((queue.popleft(), request))
            pairing.by[BY_METHOD_URI_TIME] += 1
        else:
            pairing.unmatched_upstream.append(request)
    for queue in waiting.values():
        pairing.unmatched_client.extend(queue)
    pairing.unmatched_client.sort(key=lambda request: request.first_frame)


def _answered_before(request: HttpRequest, frame: int) -> bool:
    return request.response_frame is not None and request.response_frame < frame
