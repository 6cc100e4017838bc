"""Incremental HTTP/1.x parsing of one TCP direction: request and response heads only.

Bodies are skipped by counting (Content-Length, chunked, or until close), never buffered,
so memory per direction is bounded by the largest head (``MAX_HEAD``).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

SYNC, HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, TRAILER, UNTIL_CLOSE, DEAD = range(8)
MAX_HEAD = 64 * 1024  # a longer head is not HTTP, or not worth following
MAX_CHUNK_LINE = 1024
SYNC_CARRY = 4096  # bytes kept between segments while looking for a message start
SYNC_GIVE_UP = 1 << 20  # a stream with no message in its first MiB is not HTTP

_MESSAGE_START = re.compile(
    rb"[A-Z][A-Z_-]{0,19} [!-~]+ HTTP/1\.[01]\r\n|HTTP/1\.[01] [1-5]\d\d[ \r]"
)
_PLAUSIBLE_START = re.compile(rb"HTTP/1\.[01] |[A-Z][A-Z_-]{0,19} [!-~]")
_REQUEST_LINE = re.compile(rb"([A-Z][A-Z_-]{0,19}) ([!-~]+) HTTP/1\.[01]")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5]\d\d)(?: |$)")
_WANTED_HEADER = re.compile(
    rb"\r\n(content-length|transfer-encoding|x-request-id|x-served-by)[ \t]*:([^\r\n]*)",
    re.IGNORECASE,
)
_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(slots=True)
class HttpRequest:
    """One request seen on the wire, with the head of its response once that is seen."""

    connection: int  # TCP connection number, in order of appearance
    position: int  # 1 for the first request on its connection (keep-alive reuse)
    client: str
    client_port: int
    server: str
    server_port: int
    method: str
    uri: str
    request_id: str | None
    first_frame: int  # frame carrying the request's first byte
    first_ts: float
    last_frame: int  # frame carrying its last byte (end of head or body)
    last_ts: float
    status: int | None = None
    served_by: str | None = None
    response_request_id: str | None = None
    response_frame: int | None = None  # frame carrying the response's first byte
    response_ts: float | None = None
    response_end_frame: int | None = None  # frame carrying the response's last byte
    response_end_ts: float | None = None


class HttpLog:
    """Everything the parsers found, in one place: grows with requests, not packets."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self.orphan_responses = 0  # responses with no request seen before them
        self.resyncs = 0  # times a parser lost track and searched for the next message


class Conversation:
    """What the two directions of one TCP connection share."""

    __slots__ = ("number", "awaiting", "requests_seen", "log")

    def __init__(self, number: int, log: HttpLog):
        self.number = number
        self.awaiting: deque[HttpRequest] = deque()  # requests without a response yet
        self.requests_seen = 0
        self.log = log


def _wanted_headers(head: bytes) -> dict[bytes, str]:
    """The few headers the analysis uses, found with one regex pass over the head."""
    return {
        name.lower(): value.strip().decode("latin-1")
        for name, value in _WANTED_HEADER.findall(head)
    }


def _body_framing(headers: dict[bytes, str]) -> tuple[int, int]:
    """Return (state, byte count) for the body announced by the headers; -1 if malformed."""
    if "chunked" in headers.get(b"transfer-encoding", "").lower():
        return CHUNK_SIZE, 0
    length = headers.get(b"content-length")
    if length is None:
        return HEAD, -2  # no length given: caller decides (none, or until close)
    if not length.isdigit():
        return DEAD, -1
    return BODY, int(length)


class HttpParser:
    """Parses one direction of a TCP connection: all requests, or all responses."""

    __slots__ = (
        "conversation", "client", "client_port", "server", "server_port", "state", "buf",
        "carry", "remaining", "role", "current", "first_frame", "first_ts", "at_start",
        "scanned",
    )

    def __init__(self, conversation: Conversation, endpoints: tuple[str, int, str, int],
                 from_start: bool):
        self.conversation = conversation
        self.client, self.client_port, self.server, self.server_port = endpoints
        # From a SYN the first byte must start a message; otherwise search for one.
        self.state = HEAD if from_start else SYNC
        self.at_start = from_start  # nothing parsed yet, stream seen from its first byte
        self.buf = bytearray()
        self.carry = b""
        self.remaining = 0
        self.role: str | None = None  # "request" or "response" once a message is seen
        self.current: HttpRequest | None = None  # request the current message belongs to
        self.first_frame = 0
        self.first_ts = 0.0
        self.scanned = 0

    def feed(self, data: bytes, ts: float, frame: int) -> None:
        pos, size = 0, len(data)
        while pos < size:
            state = self.state
            if state in (BODY, CHUNK_DATA):
                take = min(self.remaining, size - pos)
                self.remaining -= take
                pos += take
                if not self.remaining:
                    if state == BODY:
                        self._message_done(ts, frame)
                    else:
                        self.state = CHUNK_SIZE
            elif state == HEAD:
                data, pos, size = self._feed_head(data, pos, ts, frame)
            elif state == SYNC:
                data, pos, size = self._search_start(data, pos, ts, frame)
            elif state in (CHUNK_SIZE, TRAILER):
                pos = self._feed_chunk_line(data, pos, ts, frame)
            else:  # UNTIL_CLOSE or DEAD: nothing to find in these bytes
                return

    def gap(self, size: int, ts: float, frame: int) -> None:
        """``size`` bytes of the stream were not captured."""
        if self.state in (BODY, CHUNK_DATA) and size <= self.remaining:
            self.remaining -= size  # the hole is inside a body: still in step
            if not self.remaining:
                if self.state == BODY:
                    self._message_done(ts, frame)
                else:
                    self.state = CHUNK_SIZE
        elif self.state == SYNC:
            self.carry = b""  # bytes on either side of a hole do not join up
        elif self.state not in (UNTIL_CLOSE, DEAD):
            self._lose_track()

    def close(self, ts: float, frame: int) -> None:
        if self.state == UNTIL_CLOSE:
            self._message_done(ts, frame)
        self.state = DEAD

    # -- heads -----------------------------------------------------------------------

    def _feed_head(self, data: bytes, pos: int, ts: float, frame: int):
        size = len(data)
        buf = self.buf
        if not buf:
            while pos < size and data[pos] in b"\r\n":  # stray CRLFs between messages
                pos += 1
            if pos == size:
                return data, pos, size
            self.first_frame, self.first_ts = frame, ts
            end = data.find(b"\r\n\r\n", pos, pos + MAX_HEAD)
            if end >= 0:  # the usual case: a whole head in one segment, no copy
                if self._head_done(data[pos:end], ts, frame):
                    return data, end + 4, size
                return self._reject_head(data[pos:])
        search_from = max(len(buf) - 3, 0)
        buf += memoryview(data)[pos:]
        end = buf.find(b"\r\n\r\n", search_from)
        if end < 0:
            if len(buf) > MAX_HEAD or not self._plausible(buf):
                return self._reject_head()
            return data, size, size
        # The head ends in this segment: what follows it is this segment's tail.
        after = size - (len(buf) - end - 4)
        head = bytes(buf[:end])
        if end > MAX_HEAD or not self._head_done(head, ts, frame):
            return self._reject_head()
        buf.clear()
        return data, after, size

    def _plausible(self, buf: bytearray) -> bool:
        if len(buf) < 22 and b"\n" not in buf:
            return True  # too short to judge
        return _PLAUSIBLE_START.match(buf) is not None

    def _reject_head(self, rest: bytes | None = None):
        """The bytes at a message boundary are not a message: search onwards, or give up."""
        rest = bytes(self.buf) if rest is None else rest
        self.buf.clear()
        if self.at_start:  # a fresh connection that does not start with HTTP
            self.state = DEAD
            return b"", 0, 0
        self._lose_track()
        return rest[1:], 0, len(rest) - 1

    def _search_start(self, data: bytes, pos: int, ts: float, frame: int):
        window = self.carry + data[pos:] if self.carry else data[pos:]
        found = _MESSAGE_START.search(window)
        if found is None:
            self.carry = window[-SYNC_CARRY:]
            self.scanned += len(data) - pos
            if self.role is None and self.scanned > SYNC_GIVE_UP:
                self.state = DEAD
            return data, len(data), len(data)
        self.carry = b""
        self.state = HEAD
        return window, found.start(), len(window)

    def _lose_track(self) -> None:
        self.conversation.log.resyncs += 1
        self.state = SYNC
        self.buf.clear()
        self.carry = b""
        self.at_start = False
        self.current = None

    def _head_done(self, head: bytes, ts: float, frame: int) -> bool:
        line_end = head.find(b"\r\n")
        start_line = head if line_end < 0 else head[:line_end]
        if start_line.startswith(b"HTTP/"):
            match = _STATUS_LINE.match(start_line)
            if match is None or self.role == "request":
                return False
            self.role = "response"
            self._response_head(int(match[1]), _wanted_headers(head), ts, frame)
        else:
            match = _REQUEST_LINE.fullmatch(start_line)
            if match is None or self.role == "response":
                return False
            self.role = "request"
            self._request_head(match[1], match[2], _wanted_headers(head), ts, frame)
        self.at_start = False
        return True

    def _request_head(self, method: bytes, uri: bytes, headers: dict, ts: float,
                      frame: int) -> None:
        conv = self.conversation
        conv.requests_seen += 1
        request = HttpRequest(
            conv.number, conv.requests_seen, self.client, self.client_port, self.server,
            self.server_port, method.decode("latin-1"), uri.decode("latin-1"),
            headers.get(b"x-request-id"), self.first_frame, self.first_ts, frame, ts,
        )
        conv.awaiting.append(request)
        conv.log.requests.append(request)
        self.current = request
        state, length = _body_framing(headers)
        self._start_body(state, max(length, 0), ts, frame)

    def _response_head(self, status: int, headers: dict, ts: float, frame: int) -> None:
        if status < 200:
            # 1xx: an interim answer; the real response follows. 101 leaves HTTP.
            self.state = DEAD if status == 101 else HEAD
            return
        conv = self.conversation
        request = conv.awaiting.popleft() if conv.awaiting else None
        self.current = request
        if request is None:
            conv.log.orphan_responses += 1
        else:
            request.status = status
            request.served_by = headers.get(b"x-served-by")
            request.response_request_id = headers.get(b"x-request-id")
            request.response_frame, request.response_ts = self.first_frame, self.first_ts
        if status in _NO_BODY_STATUSES or (request is not None and request.method == "HEAD"):
            self._message_done(ts, frame)
            return
        state, length = _body_framing(headers)
        if length == -2:  # a response without length ends when the server closes
            self.state = UNTIL_CLOSE
            return
        self._start_body(state, max(length, 0), ts, frame)

    def _start_body(self, state: int, length: int, ts: float, frame: int) -> None:
        if state == DEAD:
            self._lose_track()
        elif state == BODY and length:
            self.state, self.remaining = BODY, length
        elif state == CHUNK_SIZE:
            self.state = CHUNK_SIZE
        else:
            self._message_done(ts, frame)

    # -- chunked bodies --------------------------------------------------------------

    def _feed_chunk_line(self, data: bytes, pos: int, ts: float, frame: int) -> int:
        newline = data.find(b"\n", pos)
        if newline < 0:
            self.buf += memoryview(data)[pos:]
            if len(self.buf) > MAX_CHUNK_LINE:
                self._lose_track()
            return len(data)
        self.buf += memoryview(data)[pos:newline]
        line = bytes(self.buf).strip()
        self.buf.clear()
        if self.state == TRAILER:
            if not line:
                self._message_done(ts, frame)
            return newline + 1
        try:
            size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            self._lose_track()
            return newline + 1
        if size:
            self.state, self.remaining = CHUNK_DATA, size + 2  # data and its CRLF
        else:
            self.state = TRAILER
        return newline + 1

    # -- message ends ----------------------------------------------------------------

    def _message_done(self, ts: float, frame: int) -> None:
        request = self.current
        if request is not None:
            if self.role == "request":
                request.last_frame, request.last_ts = frame, ts
            else:
                request.response_end_frame, request.response_end_ts = frame, ts
        self.current = None
        self.state = HEAD
