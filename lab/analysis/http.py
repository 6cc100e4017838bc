"""Incremental HTTP/1.x parsing of one TCP direction: request and response heads only.

Bodies are skipped by counting (Content-Length, chunked, or until close), never buffered,
so memory per direction is bounded by the largest head (``MAX_HEAD``). A head that is
whole in its segment (the usual case) is read in place, in the capture's block:

- the start line: a response's by a dict lookup of its first 13 bytes ("HTTP/1.1 200 "),
  a request's by a regular expression, cached per line (request lines repeat);
- the body's framing: "Content-Length:" as usually spelt by one ``rpartition``;
  otherwise Content-Length and Transfer-Encoding in any spelling, in a lower-cased copy
  (a request's, the usual one without a body, as text: see ``_request``);
- the header lines are kept with the request (while it is in flight), and the headers
  some analyses need (X-Request-ID, X-Served-By) are read from them only when asked
  for (``header_value``).

Searches cost more in calls than in bytes scanned (heads are short): ``bytes.find`` and
``rfind`` parse their arguments with ``PyArg_ParseTuple`` (~700 instructions a call on
CPython 3.11), ``rpartition`` and ``in`` on text do not. So a search with no need for a
position uses one of those.

Each request is announced twice, in frame order (see ``lab.analysis.order``): when its
head is complete (``started``) and when nothing more will be learnt about it
(``done``): its response has ended, or its connection or the capture has.
"""

from __future__ import annotations

import re
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.analysis.order import FrameOrder

SYNC, HEAD, BODY, CHUNK_SIZE, CHUNK_DATA, TRAILER, UNTIL_CLOSE, DEAD = range(8)
REQUEST, RESPONSE = "request", "response"
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
_NO_BODY_STATUSES = frozenset({204, 304})
CHUNKED, NO_LENGTH, MALFORMED = -1, -2, -3  # body framings besides a length

# The first 13 bytes of the usual status line ("HTTP/1.1 200 ") -> its status: one dict
# lookup instead of a line search and a regular expression, for every response.
STATUS_PREFIX = 13
_STATUS_PREFIXES = {f"HTTP/1.{minor} {status} ".encode(): status
                    for minor in (0, 1) for status in range(100, 600)}

# Header names as searched for in the lower-cased header lines: each follows a CRLF.
CONTENT_LENGTH = b"\r\ncontent-length"
TRANSFER_ENCODING = b"\r\ntransfer-encoding"
LOWER_CONTENT_LENGTH, LOWER_TRANSFER_ENCODING = "\r\ncontent-length", "\r\ntransfer-encoding"
X_REQUEST_ID = b"\r\nx-request-id"
X_SERVED_BY = b"\r\nx-served-by"
# ...and as almost everyone spells them, colon included: found without a lower-cased copy.
USUAL_CONTENT_LENGTH = b"\r\nContent-Length:"
USUAL_X_REQUEST_ID = b"\r\nX-Request-ID:"
USUAL_X_SERVED_BY = b"\r\nX-Served-By:"


class Route:
    """Where the requests of one connection go: client address, server address and port.

    One object per connection direction, shared by its requests, so that the analysis can
    keep its record of the route in ``counted`` instead of looking it up per request. It
    also holds what is the same for every request of the connection: its number and the
    client's port.
    """

    __slots__ = ("client", "server", "port", "counted", "connection", "client_port")

    def __init__(self, client: str, server: str, port: int, connection: int = 0,
                 client_port: int = 0):
        self.client, self.server, self.port = client, server, port
        self.connection, self.client_port = connection, client_port
        self.counted: object = None

    @property
    def key(self) -> tuple[str, str, int]:
        return self.client, self.server, self.port


class HttpRequest:
    """One request seen on the wire, with the head of its response once that is seen.

    The header lines of both heads are kept (while the request is in flight), and the
    headers the analysis may want are read from them when asked for: each analysis needs
    only some of them, for some requests. One is made per request, so ``__init__`` takes
    only what differs per request (what is the same for the connection is in ``route``)
    and sets the rest plainly.
    """

    # What the response brings, until it comes: class attributes, so that __init__ (run
    # for every request) sets only what it knows. (No __slots__: a slot has no default.)
    status: int | None = None
    response_head: bytes | None = None  # the response's header lines
    response_frame: int | None = None  # frame carrying the response's first byte
    response_ts: float | None = None
    response_end_frame: int | None = None  # frame carrying the response's last byte
    response_end_ts: float | None = None
    paired = False  # taken by the analysis' pairing (see lab.analysis.pairing)

    def __init__(self, route: Route, position: int, method: str, uri: str, head: bytes,
                 first_frame: int, first_ts: float, last_frame: int, last_ts: float):
        self.route = route
        self.position = position  # 1 for the first request on its connection (keep-alive)
        self.method, self.uri = method, uri
        self.head = head  # the request's header lines, each after a CRLF
        self.first_frame, self.first_ts = first_frame, first_ts  # its first byte's frame
        self.last_frame, self.last_ts = last_frame, last_ts  # its last (head or body) byte's

    def __repr__(self) -> str:
        return (f"HttpRequest(connection={self.connection}, position={self.position}, "
                f"method={self.method!r}, uri={self.uri!r}, first_frame={self.first_frame}, "
                f"status={self.status})")

    @property
    def connection(self) -> int:
        """TCP connection number, in order of appearance."""
        return self.route.connection

    @property
    def client_port(self) -> int:
        return self.route.client_port

    @property
    def request_id(self) -> str | None:
        """The request's X-Request-ID."""
        return header_text(self.head, USUAL_X_REQUEST_ID, X_REQUEST_ID)

    @property
    def served_by(self) -> str | None:
        """The response's X-Served-By."""
        return header_text(self.response_head, USUAL_X_SERVED_BY, X_SERVED_BY)

    @property
    def response_request_id(self) -> str | None:
        """The response's X-Request-ID (nginx's add_header echoes it to the client)."""
        return header_text(self.response_head, USUAL_X_REQUEST_ID, X_REQUEST_ID)

    @property
    def client(self) -> str:
        return self.route.client

    @property
    def server(self) -> str:
        return self.route.server

    @property
    def server_port(self) -> int:
        return self.route.port

    @property
    def end_frame(self) -> int:
        """Where the exchange ends: the response's last byte, as far as it was seen."""
        return self.response_end_frame or self.response_frame or self.last_frame


class HttpLog:
    """What all the parsers share: where requests are announced, and counts."""

    def __init__(self, order: FrameOrder) -> None:
        self.order = order
        self.requests = 0  # of the connections closed so far (all, at the end)
        self.orphan_responses = 0  # responses with no request seen before them
        self.resyncs = 0  # times a parser lost track and searched for the next message


class Conversation:
    """What the two directions of one TCP connection share."""

    __slots__ = ("number", "awaiting", "requests_seen", "log", "closed")

    def __init__(self, number: int, log: HttpLog):
        self.number = number
        self.awaiting: deque[HttpRequest] = deque()  # requests without a response yet
        self.requests_seen = 0
        self.log = log
        self.closed = False

    def close(self) -> None:
        """The connection is over: its unanswered requests are done."""
        if self.closed:
            return
        self.closed = True
        self.log.requests += self.requests_seen
        done = self.log.order.done
        while self.awaiting:
            done(self.awaiting.popleft())


def _header(lowered: bytes, name: bytes) -> tuple[int, int] | None:
    """Where the value of the last header ``name`` is in ``lowered``: (start, end).

    ``lowered`` is the lower-cased header lines, from the CRLF ending the start line to the
    CRLF ending the last header; ``name`` is lower case, with its leading CRLF. The usual
    "Name: value" is found by one ``rfind``; the rest is left to ``_unusual_header``.
    """
    at = lowered.rfind(name)
    if at < 0:
        return None
    colon = at + len(name)
    if lowered[colon] != 58:  # ":"
        return _unusual_header(lowered, name, at)
    return colon + 1, lowered.find(b"\r\n", colon)


def _unusual_header(lowered: bytes, name: bytes, at: int) -> tuple[int, int] | None:
    """Blanks before the colon, or a longer name (x-request-id-from) found first."""
    while at >= 0:
        colon = at + len(name)
        while lowered[colon] in b" \t":
            colon += 1
        if lowered[colon] == 58:
            return colon + 1, lowered.find(b"\r\n", colon)
        at = lowered.rfind(name, 0, at)
    return None


def header_value(lines: bytes | None, usual: bytes, name: bytes) -> bytes | None:
    """The value of a header in header ``lines``, as bytes: looked for as ``usual``ly
    spelt (as in ``USUAL_X_REQUEST_ID``), then in any case (``name``: ``X_REQUEST_ID``)."""
    if lines is None:
        return None
    _, found, after = lines.rpartition(usual)  # (cheaper than rfind: see the docstring)
    if found:
        return after.partition(b"\r\n")[0].strip()
    span = _header(lines.lower(), name)
    return None if span is None else lines[span[0]:span[1]].strip()


def header_text(lines: bytes | None, usual: bytes, name: bytes) -> str | None:
    """``header_value`` as text."""
    value = header_value(lines, usual, name)
    return None if value is None else value.decode("latin-1")


def _body_framing(lines: bytes) -> int:
    """The body announced by header ``lines``: its length, or CHUNKED, NO_LENGTH or
    MALFORMED. A usually spelt Content-Length is read as is (with a Transfer-Encoding too,
    the message is malformed: the length is trusted); anything else from a lower-cased
    copy."""
    _, found, after = lines.rpartition(USUAL_CONTENT_LENGTH)
    if found:
        digits = after.partition(b"\r\n")[0].strip()
        return int(digits) if digits.isdigit() else MALFORMED
    return _lowered_body_framing(lines.lower())


def _lowered_body_framing(lowered: bytes) -> int:
    """``_body_framing`` from the lower-cased header lines: what a request without a body
    needs (nothing to find, in any spelling)."""
    if lowered.find(TRANSFER_ENCODING) >= 0 and _is_chunked(lowered):
        return CHUNKED
    span = _header(lowered, CONTENT_LENGTH)
    if span is None:
        return NO_LENGTH
    digits = lowered[span[0]:span[1]].strip()
    return int(digits) if digits.isdigit() else MALFORMED


def _is_chunked(lowered: bytes) -> bool:
    encoding = _header(lowered, TRANSFER_ENCODING)
    return encoding is not None and lowered.find(b"chunked", *encoding) >= 0


_REQUEST_LINES: dict[bytes, tuple[str, str]] = {}  # request lines repeat: a cache
MAX_REQUEST_LINES = 4096


def _request_line(line: bytes) -> tuple[str, str] | None:
    """(method, URI) of a request line; None if it is not one."""
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        return None
    if len(_REQUEST_LINES) >= MAX_REQUEST_LINES:
        _REQUEST_LINES.clear()
    parsed = _REQUEST_LINES[line] = match[1].decode("latin-1"), match[2].decode("latin-1")
    return parsed


class HttpParser:
    """Parses one direction of a TCP connection: all requests, or all responses."""

    __slots__ = (
        "conversation", "order", "route", "state", "buf", "carry",
        "remaining", "role", "current", "first_frame", "first_ts", "at_start", "scanned",
        "holding", "parse_head", "bodiless_lines",
    )

    def __init__(self, conversation: Conversation, route: Route, from_start: bool):
        """``route``: this direction's source, destination and ports, i.e. the client and
        server if it carries requests."""
        self.conversation = conversation
        self.order = conversation.log.order
        self.route = route
        # From a SYN the first byte must start a message; otherwise search for one.
        self.state = HEAD if from_start else SYNC
        self.at_start = from_start  # nothing parsed yet, stream seen from its first byte
        self.buf = bytearray()
        self.carry = b""
        self.remaining = 0
        self.role: str | None = None  # REQUEST or RESPONSE once a message is seen
        self.current: HttpRequest | None = None  # request the current message belongs to
        self.first_frame = 0
        self.first_ts = 0.0
        self.scanned = 0
        self.holding = False  # a request head spans segments: its start is not known yet
        # How a whole head is parsed: by the role, once known. A plain function, called
        # with self (a bound method kept on self would make a reference cycle).
        self.parse_head = HttpParser._first_message
        # The header lines of the last request seen to announce no body: a client's requests
        # often repeat them, and comparing costs less than looking (see _request).
        self.bodiless_lines = b""

    def feed(self, data: bytes, ts: float, frame: int, pos: int, size: int) -> None:
        """Parse the next bytes of this direction, ``data[pos:size]``, carried by ``frame``.

        ``data`` may be a whole block of the capture file: the usual message is parsed in
        place, and only what must be kept is copied out of it.
        """
        while pos < size:
            state = self.state
            if state == HEAD and not self.buf:  # a message starts at pos
                end = data.find(b"\r\n\r\n", pos, size)
                if 0 <= end - pos <= MAX_HEAD:  # the usual case: a whole head here
                    after = self.parse_head(self, data, pos, end, size, ts, frame, frame, ts)
                    if after >= 0:
                        pos = after
                        continue
                    data, pos, size = self._not_a_head(data[pos:size])
                else:  # the head goes on in later segments
                    data, pos, size = self._start_head(data[pos:size], ts, frame)
            elif state in (BODY, CHUNK_DATA):
                take = min(self.remaining, size - pos)
                self.remaining -= take
                pos += take
                if not self.remaining:
                    if state == BODY:
                        self._message_done(ts, frame)
                    else:
                        self.state = CHUNK_SIZE
            else:  # the rarer states work on a copy of the rest
                if pos or size != len(data):
                    data, pos, size = data[pos:size], 0, size - pos
                if state == HEAD:
                    data, pos, size = self._continue_head(data, pos, ts, frame)
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

    def close(self, ts: float | None, frame: int | None) -> None:
        """No more bytes: a response delimited by the close ends at ``frame`` (None: the
        capture ended first, so its end was not seen)."""
        if self.state == UNTIL_CLOSE and frame is not None:
            self._message_done(ts, frame)
        self._end_current_response()
        self._stop_holding()
        self.buf.clear()
        self.state = DEAD

    # -- heads -----------------------------------------------------------------------

    def _not_a_head(self, data: bytes):
        """No message head at the start of ``data``: skip stray CRLFs between messages,
        or reject."""
        size, pos = len(data), 0
        if data[pos] in b"\r\n":
            while pos < size and data[pos] in b"\r\n":
                pos += 1
            return data, pos, size
        return self._reject_head(data)

    def _start_head(self, data: bytes, ts: float, frame: int):
        """A head starts ``data`` and goes on in later segments: gather it in ``buf``."""
        size, pos = len(data), 0
        while pos < size and data[pos] in b"\r\n":  # stray CRLFs between messages
            pos += 1
        if pos == size:
            return data, pos, size
        self.first_frame, self.first_ts = frame, ts
        self.buf += memoryview(data)[pos:]
        if self.role != RESPONSE:
            self.holding = True
            self.order.hold(self, frame)
        if len(self.buf) > MAX_HEAD or not self._plausible(self.buf):
            return self._reject_head()
        return data, size, size

    def _continue_head(self, data: bytes, pos: int, ts: float, frame: int):
        """The head began in an earlier segment: gather it in ``buf``."""
        size = len(data)
        buf = self.buf
        search_from = max(len(buf) - 3, 0)
        buf += memoryview(data)[pos:]
        end = buf.find(b"\r\n\r\n", search_from)
        if end < 0:
            if len(buf) > MAX_HEAD or not self._plausible(buf):
                return self._reject_head()
            return data, size, size
        # The head ends in this segment: what follows it is this segment's tail.
        after = size - (len(buf) - end - 4)
        head = bytes(buf[:end + 4])
        if end > MAX_HEAD or self._head(head, 0, end, ts, frame) < 0:
            return self._reject_head()
        buf.clear()
        self._stop_holding()
        return data, after, size

    def _plausible(self, buf: bytearray) -> bool:
        if len(buf) < 22 and b"\n" not in buf:
            return True  # too short to judge
        return _PLAUSIBLE_START.match(buf) is not None

    def _reject_head(self, rest: bytes | None = None):
        """The bytes at a message boundary are not a message: search onwards, or give up."""
        rest = bytes(self.buf) if rest is None else rest
        self.buf.clear()
        self._stop_holding()
        if self.at_start:  # a fresh connection that does not start with HTTP
            self.state = DEAD
            return b"", 0, 0
        self._lose_track()
        return rest[1:], 0, len(rest) - 1

    def _stop_holding(self) -> None:
        if self.holding:
            self.holding = False
            self.order.release(self)

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
        self._end_current_response()
        self._stop_holding()
        self.state = SYNC
        self.buf.clear()
        self.carry = b""
        self.at_start = False
        self.current = None

    def _head(self, head: bytes, start: int, end: int, ts: float, frame: int) -> int:
        """Parse a message whose head was gathered over several segments (``feed`` does
        the usual, whole head in place)."""
        return self.parse_head(self, head, start, end, len(head), ts, frame, self.first_frame,
                               self.first_ts)

    def _first_message(self, head: bytes, start: int, end: int, stop: int, ts: float,
                       frame: int, first_frame: int, first_ts: float) -> int:
        """The first message decides what this direction carries: requests or responses."""
        if head.startswith(b"HTTP/", start):
            self.role, self.parse_head = RESPONSE, HttpParser._response
        else:
            self.role, self.parse_head = REQUEST, HttpParser._request
        after = self.parse_head(self, head, start, end, stop, ts, frame, first_frame, first_ts)
        if after < 0:
            self.role, self.parse_head = None, HttpParser._first_message
        else:
            self.at_start = False
        return after

    # The two functions below run once per message. Each parses the head
    # ``head[start:end]`` (CRLF CRLF follows), first seen in ``first_frame`` and complete in
    # ``frame``, and returns where parsing goes on: after the head, or after the body if
    # it is in ``head[:stop]`` too; -1 if it is not a message this direction may carry.

    def _request(self, head: bytes, start: int, end: int, stop: int, ts: float, frame: int,
                 first_frame: int, first_ts: float) -> int:
        """A request head: announce the request, then skip its body (if any)."""
        line_end = head.find(b"\r\n", start, end)
        if line_end < 0:
            line_end = end
        line = head[start:line_end]
        parsed = _REQUEST_LINES.get(line) or _request_line(line)
        if parsed is None:
            return -1
        lines = head[line_end:end + 2]  # the header lines, each after a CRLF
        method, uri = parsed
        conv = self.conversation
        conv.requests_seen += 1
        request = HttpRequest(self.route, conv.requests_seen, method, uri, lines, first_frame,
                              first_ts, frame, ts)
        conv.awaiting.append(request)
        self.order.started(request)
        if lines == self.bodiless_lines:
            return end + 4  # no body, as before: the request ended with its head
        # Does a header announce a body, in any spelling? Asked of a lower-cased text copy:
        # "in" on text is one plain search, while bytes.find() parses its arguments and
        # "in" on bytes first tries its operand as an integer, paying for the TypeError.
        lowered = lines.decode("latin-1").lower()
        if LOWER_CONTENT_LENGTH not in lowered and LOWER_TRANSFER_ENCODING not in lowered:
            self.bodiless_lines = lines
            return end + 4  # no body: the request ended with its head, at this frame
        framing = _lowered_body_framing(lines.lower())
        if framing == NO_LENGTH or framing == 0:
            return end + 4
        self.current = request
        return self._body(framing, end + 4, stop, ts, frame)

    def _response(self, head: bytes, start: int, end: int, stop: int, ts: float, frame: int,
                  first_frame: int, first_ts: float) -> int:
        """A response head: it answers the oldest request waiting on this connection."""
        status = _STATUS_PREFIXES.get(head[start:start + STATUS_PREFIX])
        if status is not None:
            base = start + 12  # (STATUS_PREFIX - 1) the reason phrase cannot hold a header
        else:  # no reason phrase, or not a status line
            base = head.find(b"\r\n", start, end)
            if base < 0:
                base = end
            match = _STATUS_LINE.match(head, start, base)
            if match is None:
                return -1
            status = int(match[1])
        if status < 200:
            # 1xx: an interim answer; the real response follows. 101 leaves HTTP.
            if status == 101:
                self.state = DEAD
            return end + 4
        lines = head[base:end + 2]  # the header lines, each after a CRLF
        conv = self.conversation
        request = conv.awaiting.popleft() if conv.awaiting else None
        if request is not None:
            request.status = status
            request.response_head = lines
            request.response_frame, request.response_ts = first_frame, first_ts
            if request.method == "HEAD" or status in _NO_BODY_STATUSES:
                self.current = request
                self._message_done(ts, frame)
                return end + 4
        else:
            conv.log.orphan_responses += 1
            if status in _NO_BODY_STATUSES:
                return end + 4
        _, found, after = lines.rpartition(USUAL_CONTENT_LENGTH)  # _body_framing's usual
        if found:  # case, inline (a Transfer-Encoding too would be malformed: length trusted)
            try:  # int() takes the blanks around the value too
                framing = int(after.partition(b"\r\n")[0])
            except ValueError:
                framing = MALFORMED
            if framing < 0:
                framing = MALFORMED
        else:
            framing = _body_framing(lines)
        after = end + 4 + framing
        if framing >= 0 and after <= stop and request is not None:
            # the usual case, inline: the whole body is here, the exchange is over
            request.response_end_frame, request.response_end_ts = frame, ts
            self.order.done(request)
            return after
        self.current = request
        if framing == NO_LENGTH:  # a response without length ends when the server closes
            self.state = UNTIL_CLOSE
            return end + 4
        return self._body(framing, end + 4, stop, ts, frame)

    def _body(self, framing: int, start: int, size: int, ts: float, frame: int) -> int:
        """The current message's body starts at ``start`` of a segment of ``size`` bytes:
        return where parsing goes on. A body all in this segment ends the message here."""
        if framing >= 0:
            if start + framing <= size:  # the usual case
                self._message_done(ts, frame)
                return start + framing
            self.state, self.remaining = BODY, framing - (size - start)
            return size
        if framing == CHUNKED:
            self.state = CHUNK_SIZE
        else:  # MALFORMED
            self._lose_track()
        return start

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
            if self.role == REQUEST:
                request.last_frame, request.last_ts = frame, ts
            else:
                request.response_end_frame, request.response_end_ts = frame, ts
                self.order.done(request)
        self.current = None
        self.state = HEAD

    def _end_current_response(self) -> None:
        """The response being read will not be seen to its end: its request is done."""
        if self.role == RESPONSE and self.current is not None:
            self.order.done(self.current)
            self.current = None
