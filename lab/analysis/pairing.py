"""Pair each client→balancer request with the balancer→app request it caused, as they come.

nginx adds X-Request-ID to the upstream request; the client side carries the same id only
if the client sent it or nginx echoes it in the response (``add_header``). So a client
request is paired when it is done (its response seen, or its connection over):

- by X-Request-ID, when it shows one: with the upstream request(s) carrying that id (more
  than one: nginx retried another backend);
- otherwise by method + URI in time: with the oldest upstream request for the same method
  and URI that started after it and before its response.

An upstream request waits to be claimed only while a client request that started before it
is still open; then it is unmatched (looked for every ``RELEASE_EVERY`` client requests).
So only open client requests and unclaimed upstream requests are held, and paired
requests are dropped at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.analysis.http import USUAL_X_REQUEST_ID, X_REQUEST_ID, HttpRequest, header_value

BY_REQUEST_ID = "x-request-id"
BY_METHOD_URI_TIME = "method+uri+time"
EXAMPLES = 5  # unmatched requests kept, per side (the first ones)
RELEASE_EVERY = 32  # client requests done between two looks for unclaimable ones


@dataclass
class Pairing:
    """How the pairing went: counts, and the first few unmatched requests of each side."""

    by: dict[str, int] = field(default_factory=dict)  # pairing method -> pairs made by it
    paired: int = 0
    unmatched_client: int = 0
    unmatched_upstream: int = 0
    retries: int = 0  # further upstream requests carrying an X-Request-ID already paired
    client_examples: list[HttpRequest] = field(default_factory=list)
    upstream_examples: list[HttpRequest] = field(default_factory=list)

    @property
    def method(self) -> str:
        used = [name for name, count in self.by.items() if count]
        if not used:
            return "none"
        return used[0] if len(used) == 1 else "mixed"


class Pairer:
    """Streaming pairing: feed it requests in frame order (see ``lab.analysis.order``).

    ``open_clients`` and ``waiting`` are dicts used as ordered sets (insertion order is
    frame order); both stay as small as the requests in flight.
    """

    def __init__(self) -> None:
        self.result = Pairing(by={BY_REQUEST_ID: 0, BY_METHOD_URI_TIME: 0})
        self.open_clients: dict[HttpRequest, None] = {}  # client requests not yet done
        self.waiting: dict[HttpRequest, None] = {}  # upstream requests not yet claimed
        self.by_id: dict[bytes, HttpRequest] = {}  # waiting upstream requests by id...
        self.retried: dict[bytes, list[HttpRequest]] = {}  # ...and further ones with it
        self.paired_by_id = 0  # counted here, added to the result at the end
        self._until_release = RELEASE_EVERY

    def client_started(self, request: HttpRequest) -> None:
        self.open_clients[request] = None

    def upstream_started(self, request: HttpRequest, request_id: bytes | None) -> None:
        """``request_id``: its X-Request-ID (bytes), which the caller read already."""
        if not self.open_clients:  # no client request could still claim it
            self._unmatched(request, self.result.upstream_examples)
            self.result.unmatched_upstream += 1
            return
        self.waiting[request] = None
        if request_id:
            if request_id in self.by_id:
                self.retried.setdefault(request_id, []).append(request)
            else:
                self.by_id[request_id] = request

    def client_done(self, request: HttpRequest) -> HttpRequest | None:
        """Pair a client request that is done; return its upstream request, if any."""
        self.open_clients.pop(request, None)
        # the id nginx echoed, else the client's own (request.response_request_id or
        # request.request_id, as bytes, read straight from the heads: this runs for every
        # request)
        request_id = header_value(request.response_head, USUAL_X_REQUEST_ID, X_REQUEST_ID) \
            or header_value(request.head, USUAL_X_REQUEST_ID, X_REQUEST_ID)
        partner = self.by_id.pop(request_id, None)  # by X-Request-ID, the usual case
        if partner is not None:
            partner.paired = True
            del self.waiting[partner]
            self.paired_by_id += 1
            if self.retried:
                self._retries(request_id)
        else:
            partner = self._by_method_uri_time(request)
            if partner is None:
                self.result.unmatched_client += 1
                self._unmatched(request, self.result.client_examples)
        self._until_release -= 1
        if not self._until_release:
            self._until_release = RELEASE_EVERY
            self._release_unclaimable()
        return partner

    def finish(self) -> Pairing:
        self.open_clients.clear()
        self._release_unclaimable()
        self.result.by[BY_REQUEST_ID] += self.paired_by_id
        self.result.paired += self.paired_by_id
        self.paired_by_id = 0
        return self.result

    def _retries(self, request_id: bytes) -> None:
        """Further upstream requests with a paired X-Request-ID: nginx tried another
        backend. They are part of that exchange."""
        for retry in self.retried.pop(request_id, ()):
            retry.paired = True
            del self.waiting[retry]
            self.result.retries += 1

    def _by_method_uri_time(self, client: HttpRequest) -> HttpRequest | None:
        answered = client.response_frame
        for candidate in self.waiting:
            if candidate.first_frame < client.first_frame:
                continue
            if answered is not None and candidate.first_frame > answered:
                return None  # the rest started later still
            if candidate.method == client.method and candidate.uri == client.uri:
                candidate.paired = True
                self._forget(candidate)
                self.result.by[BY_METHOD_URI_TIME] += 1
                self.result.paired += 1
                return candidate
        return None

    def _forget(self, upstream: HttpRequest) -> None:
        del self.waiting[upstream]
        request_id = header_value(upstream.head, USUAL_X_REQUEST_ID, X_REQUEST_ID)
        if not request_id:
            return
        retries = self.retried.get(request_id)
        if self.by_id.get(request_id) is upstream:
            del self.by_id[request_id]
            if retries:  # the next one with this id takes its place
                self.by_id[request_id] = retries.pop(0)
        elif retries and upstream in retries:
            retries.remove(upstream)
        if not retries:
            self.retried.pop(request_id, None)

    def _release_unclaimable(self) -> None:
        """Upstream requests no open client request started before are unmatched."""
        while self.waiting:
            upstream = next(iter(self.waiting))
            if self.open_clients and \
                    next(iter(self.open_clients)).first_frame < upstream.first_frame:
                return
            self._forget(upstream)
            self.result.unmatched_upstream += 1
            self._unmatched(upstream, self.result.upstream_examples)

    @staticmethod
    def _unmatched(request: HttpRequest, examples: list[HttpRequest]) -> None:
        if len(examples) < EXAMPLES or request.first_frame < examples[-1].first_frame:
            examples.append(request)
            examples.sort(key=lambda r: r.first_frame)
            del examples[EXAMPLES:]
