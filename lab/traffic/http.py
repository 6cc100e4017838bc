"""A lean HTTP/1.1 keep-alive client connection on asyncio (uvloop) protocols.

General clients (aiohttp, httpx) spend more CPU per request than the app servers can
spare on a two-core machine, and the load generator must not be the bottleneck
(bench/loadgen_vs_wrk.py measures it against wrk). This one does only what a load
generator needs: send a request, read one response (Content-Length or chunked), keep the
connection, and pick out the few headers the lab reports on.
"""

from __future__ import annotations

import asyncio


class Response:
    """Headers are looked up when asked for (a load run reads two or three of them)."""

    __slots__ = ("status", "head", "lowered", "body")

    def __init__(self, status: int, head: bytes, lowered: bytes, body: bytes):
        self.status = status
        self.head = head
        self.lowered = lowered  # the head in lowercase: names are case-insensitive
        self.body = body

    def header(self, name: bytes) -> str | None:
        """The value of header `name` (lowercase), or None if absent or empty."""
        value = header_value(self.head, self.lowered, name)
        return value.decode("latin-1") if value else None


class HttpConnection(asyncio.Protocol):
    """One TCP connection; one request in flight at a time (no pipelining)."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.keep_alive = True

    # --- asyncio.Protocol ---
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        self.buffer += data
        if self.waiter is not None:
            self._try_complete()

    def connection_lost(self, exc):
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed by the server"))

    # --- the client side ---
    def request(self, raw: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter

    def close(self):
        if self.transport is not None:
            self.transport.close()

    def _try_complete(self):
        parsed = parse_response(self.buffer)
        if parsed is None:
            return
        response, used, keep_alive = parsed
        del self.buffer[:used]
        self.keep_alive = keep_alive
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(response)


def parse_response(buffer: bytearray) -> tuple[Response, int, bool] | None:
    """One complete response from the start of buffer, with the bytes it used, or None."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end + 2])
    status = int(head[9:12])  # "HTTP/1.1 200 ..."
    lowered = head.lower()  # header names are case-insensitive: lowercase once, in C
    length = header_value(head, lowered, b"content-length")
    keep_alive = b"close" not in lowered or header_value(
        head, lowered, b"connection").lower() != b"close"
    start = head_end + 4
    if length:
        end = start + int(length)
        if len(buffer) < end:
            return None
        body = bytes(buffer[start:end])
    elif b"chunked" in header_value(head, lowered, b"transfer-encoding").lower():
        body_end = dechunk(buffer, start)
        if body_end is None:
            return None
        body, end = body_end
    else:
        body, end = b"", start
    return Response(status, head, lowered, body), end, keep_alive


def header_value(head: bytes, lowered: bytes, name: bytes) -> bytes:
    """The value of header `name` (lowercase) in a response head, or b""."""
    at = lowered.find(b"\r\n" + name + b":")
    if at < 0:
        return b""
    start = at + len(name) + 3
    return head[start:head.find(b"\r\n", start)].strip()


def dechunk(buffer: bytearray, pos: int) -> tuple[bytes, int] | None:
    body = bytearray()
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", pos - 2)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < pos + size + 2:
            return None
        body += buffer[pos:pos + size]
        pos += size + 2


def request_bytes(method: str, host: str, path: str, body: bytes = b"",
                  content_type: str = "application/x-www-form-urlencoded",
                  headers: tuple[str, ...] = ()) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lab-loadtest\r\n"
    head += "".join(f"{header}\r\n" for header in headers)
    if method != "GET":
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def connect(host: str, port: int) -> HttpConnection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(HttpConnection, host, port)
    return protocol
