"""TCP stream reassembly, just enough to hand each direction's bytes in order to a parser.

Per direction: the next expected sequence number, and a bounded set of segments that
arrived early. Bytes already delivered are never delivered again, so a retransmitted
request is counted once. Holes that the capture missed are skipped as soon as the other
side acknowledges past them (or the early segments outgrow ``MAX_PENDING``).

A direction is named by its key (see ``lab.analysis.dissect``): packed source and
destination addresses, then the source and destination ports as on the wire.
"""

from __future__ import annotations

import socket
from collections import OrderedDict

from lab.analysis.http import Conversation, HttpLog, HttpParser, Route

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
MASK = 0xFFFFFFFF
HALF_SPACE = 0x80000000
MAX_PENDING = 512 * 1024  # bytes held per direction while waiting for a missing segment
MAX_PENDING_SEGMENTS = 512  # and segments: draining looks for the earliest each time
MAX_RETIRED = 8192  # closed connections remembered, to recognise late retransmissions


def seq_distance(seq: int, reference: int) -> int:
    """Signed distance from reference to seq in 32-bit sequence space."""
    return ((seq - reference + HALF_SPACE) & MASK) - HALF_SPACE


def address_text(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


def split_key(key: bytes) -> tuple[bytes, int, bytes, int]:
    """(source address, source port, destination address, destination port)."""
    size = (len(key) - 4) // 2
    return (key[:size], int.from_bytes(key[-4:-2], "big"), key[size:2 * size],
            int.from_bytes(key[-2:], "big"))


def reverse_key(key: bytes) -> bytes:
    size = (len(key) - 4) // 2
    return key[size:2 * size] + key[:size] + key[-2:] + key[-4:-2]


class Direction:
    """One direction of a connection: sequence tracking and the parser of its bytes."""

    __slots__ = ("key", "conversation", "peer", "next_seq", "pending", "pending_bytes",
                 "parser", "from_start", "fin", "tracker")

    def __init__(self, key: bytes, conversation: Conversation, tracker: TcpTracker):
        self.key = key
        self.conversation = conversation
        self.tracker = tracker
        self.peer: Direction | None = None
        self.next_seq: int | None = None
        self.pending: dict[int, tuple[bytes, int, float, int]] = {}
        self.pending_bytes = 0
        self.parser: HttpParser | None = None
        self.from_start = False  # the SYN was seen: the first byte starts the stream
        self.fin = False

    def receive(self, seq: int, payload: bytes, missing: int, ts: float, frame: int) -> None:
        if self.next_seq is None:
            self.next_seq = seq  # joined mid-stream
        offset = seq_distance(seq, self.next_seq)
        if offset > 0:
            self._hold(seq, payload, missing, ts, frame)
            return
        self._deliver_from(offset, payload, missing, ts, frame)
        if self.pending:
            self._drain()

    def acknowledged(self, ack: int) -> None:
        """The peer acknowledged ``ack``: a hole before it was lost by the capture only.

        A hole that reaches past ``ack`` is left alone: its bytes may still arrive.
        """
        while self.pending:
            acked = seq_distance(ack, self.next_seq)
            if acked <= 0 or self._first_held()[1] > acked:
                return
            self.skip_hole()

    def _first_held(self) -> tuple[int, int]:
        """(seq, distance from next_seq) of the earliest segment held."""
        first = min(self.pending, key=lambda seq: seq_distance(seq, self.next_seq))
        return first, seq_distance(first, self.next_seq)

    def skip_hole(self) -> None:
        first, hole = self._first_held()
        if hole > 0:
            self.tracker.bytes_not_captured += hole
            self._parser().gap(hole, *self.pending[first][2:])
            self.next_seq = first
        self._drain()

    def flush(self) -> None:
        while self.pending:
            self.skip_hole()

    def _hold(self, seq: int, payload: bytes, missing: int, ts: float, frame: int) -> None:
        if seq in self.pending:
            self.tracker.retransmissions += 1
            return
        if not self.pending:
            self.tracker.start_holding(self, frame)
        self.pending[seq] = (payload, missing, ts, frame)
        self.pending_bytes += len(payload)
        if self.pending_bytes > MAX_PENDING or len(self.pending) > MAX_PENDING_SEGMENTS:
            self.skip_hole()

    def _drain(self) -> None:
        while self.pending:
            seq, offset = self._first_held()
            if offset > 0:
                return
            payload, missing, ts, frame = self.pending.pop(seq)
            self.pending_bytes -= len(payload)
            self._deliver_from(offset, payload, missing, ts, frame)
            if not self.pending:
                self.tracker.stop_holding(self)

    def _deliver_from(self, offset: int, payload: bytes, missing: int, ts: float,
                      frame: int) -> None:
        """Deliver a segment starting ``-offset`` bytes before next_seq: only its new bytes."""
        if offset < 0:
            already_seen = -offset
            if already_seen >= len(payload) + missing:
                self.tracker.retransmissions += 1
                return
            self.tracker.retransmissions += 1  # partly new: count it, keep the new bytes
            if already_seen >= len(payload):
                missing -= already_seen - len(payload)
                payload = b""
            else:
                payload = payload[already_seen:]
        parser = self._parser()
        if payload:
            parser.feed(payload, ts, frame, 0, len(payload))
        if missing:
            self.tracker.bytes_not_captured += missing
            parser.gap(missing, ts, frame)
        self.next_seq = (self.next_seq + len(payload) + missing) & MASK

    def _parser(self) -> HttpParser:
        if self.parser is None:
            src, sport, dst, dport = split_key(self.key)
            text = self.tracker.text
            route = Route(text(src), text(dst), dport, self.conversation.number, sport)
            self.parser = HttpParser(self.conversation, route, self.from_start)
        return self.parser


class TcpTracker:
    """Follows every TCP connection of a capture and feeds its bytes to HTTP parsers.

    Memory: two ``Direction`` objects per open connection (with what they hold while a
    segment is missing), and the keys of the last ``MAX_RETIRED`` closed ones.
    """

    def __init__(self, log: HttpLog):
        self.log = log
        self.directions: dict[bytes, Direction] = {}
        self.retired: OrderedDict[bytes, int] = OrderedDict()  # key -> next seq at close
        self.connections = 0
        self.holding = 0  # directions holding early segments: they need the peer's ACKs
        self.retransmissions = 0
        self.bytes_not_captured = 0
        self._addresses: dict[bytes, str] = {}

    def text(self, packed: bytes) -> str:
        text = self._addresses.get(packed)
        if text is None:
            text = self._addresses[packed] = address_text(packed)
        return text

    def segment(self, frame: int, ts: float, key: bytes, seq: int, ack: int, flags: int,
                payload: bytes, missing: int) -> None:
        direction = self.directions.get(key)
        if direction is None or (flags & SYN and self._is_new_syn(direction, seq, flags)):
            if not (flags & SYN or payload or missing):
                return  # a bare ACK/FIN of a connection we do not follow
            if not flags & SYN and self._is_late_retransmission(key, seq, payload, missing):
                self.retransmissions += 1
                return
            direction = self._open(key, bool(flags & SYN), ts, frame)
        if flags & SYN:
            if direction.parser is None:
                direction.next_seq = (seq + 1) & MASK
                direction.from_start = True
            return
        if flags & ACK and direction.peer.pending:
            direction.peer.acknowledged(ack)
        if payload or missing:
            parser = direction.parser
            if seq == direction.next_seq and parser and not missing and not direction.pending:
                direction.next_seq = (seq + len(payload)) & MASK  # the usual, in-order case
                parser.feed(payload, ts, frame, 0, len(payload))
            else:
                direction.receive(seq, payload, missing, ts, frame)
        if flags & (FIN | RST):
            self._closing(direction, flags, ts, frame)

    def start_holding(self, direction: Direction, frame: int) -> None:
        """``direction`` holds early segments: requests may start in them, from ``frame``."""
        self.holding += 1
        self.log.order.hold(direction, frame)

    def stop_holding(self, direction: Direction) -> None:
        self.holding -= 1
        self.log.order.release(direction)

    def finish(self) -> None:
        """End of capture: deliver what waits behind holes, end what is still open."""
        for direction in self.directions.values():
            direction.flush()
        closed = set()
        for direction in list(self.directions.values()):
            if direction.conversation not in closed:
                closed.add(direction.conversation)
                self._close_conversation(direction, None, None)
        for direction in self.directions.values():
            direction.peer = None  # no reference cycle is left behind (see wire.read_wire)
        self.directions.clear()

    def _is_new_syn(self, direction: Direction, seq: int, flags: int) -> bool:
        # A SYN with another initial sequence number reuses the ports for a new connection.
        if flags & ACK or direction.next_seq is None:
            return False
        return seq_distance((seq + 1) & MASK, direction.next_seq) != 0

    def _is_late_retransmission(self, key: bytes, seq: int, payload: bytes,
                                missing: int) -> bool:
        end = self.retired.get(key)
        return end is not None and seq_distance(seq, end) + len(payload) + missing <= 0

    def _open(self, key: bytes, from_start: bool, ts: float, frame: int) -> Direction:
        old = self.directions.get(key)
        if old is not None:
            self._retire(old, ts, frame)
        self.connections += 1
        conversation = Conversation(self.connections, self.log)
        forward = Direction(key, conversation, self)
        backward = Direction(reverse_key(key), conversation, self)
        forward.peer, backward.peer = backward, forward
        forward.from_start = from_start
        self.directions[forward.key] = forward
        self.directions[backward.key] = backward
        return forward

    def _closing(self, direction: Direction, flags: int, ts: float, frame: int) -> None:
        direction.fin = True
        if flags & RST or direction.peer.fin:
            self._retire(direction, ts, frame)
        elif direction.parser is not None and not direction.pending:
            direction.parser.close(ts, frame)  # ends a response delimited by the close

    def _retire(self, direction: Direction, ts: float, frame: int) -> None:
        self._close_conversation(direction, ts, frame)
        for side in (direction, direction.peer):
            if self.directions.get(side.key) is side:
                del self.directions[side.key]
            if side.next_seq is not None:
                self.retired[side.key] = side.next_seq
                self.retired.move_to_end(side.key)
        direction.peer.peer = direction.peer = None  # no cycle left (see wire.read_wire)
        while len(self.retired) > MAX_RETIRED:
            self.retired.popitem(last=False)

    def _close_conversation(self, direction: Direction, ts: float | None,
                            frame: int | None) -> None:
        """No more bytes will come: parse what waits, end every request still open.

        ``ts``/``frame`` of the closing segment end a response delimited by the close;
        None at the end of the capture, where such a response's end is not seen.
        """
        for side in (direction, direction.peer):
            side.flush()
            if side.parser is not None:
                side.parser.close(ts, frame)
        direction.conversation.close()
