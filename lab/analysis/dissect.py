"""From capture records to TCP segments: link, IP and TCP headers dissected by hand.

Only the fields the analysis needs are read. A segment is handed to the ``TcpTracker`` as
(frame, ts, key, seq, ack, flags, payload, missing), where ``key`` names its direction: the
packed source and destination addresses followed by the two ports as on the wire (12 bytes
for IPv4, 36 for IPv6), which is one slice of an IPv4 frame. Anything that is not TCP over
IPv4/IPv6 is counted and dropped.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lab.analysis.capture import RECORD_HEADER, PcapBlocks
from lab.analysis.http import HEAD, MAX_HEAD
from lab.analysis.tcp import TcpTracker

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})
TCP = 6
SYN_FIN_RST = 0x07
IPV6_FRAGMENT = 44
IPV6_AH = 51
IPV6_SKIPPABLE = frozenset({0, 43, 60, 135, 139, 140, 253, 254})  # hop-by-hop, routing, ...
ETHERNET = 1

_ipv4 = struct.Struct("!BxHxxHxB").unpack_from  # ver/ihl, total length, fragment, protocol
_ipv6 = struct.Struct("!4xHB").unpack_from  # payload length, next header
_tcp = struct.Struct("!4xIIBB").unpack_from  # seq, ack, data offset, flags
_ushort = struct.Struct("!H").unpack_from

# The usual frame: untagged Ethernet, IPv4 without options, TCP. One ``unpack_from`` at
# the frame's start reads, in order: the ethertype, IP version/IHL and TOS as one number
# (0x080045xx); the IP total length; the fragment field, TTL and protocol as one number
# (fragment bits 0 and protocol 6: ``& 0x3FFF00FF == TCP``); the direction key (addresses,
# then ports: bytes 26..38); the seq, data offset and flags. The ack at 42 is read only
# when needed. Combined fields mean fewer values and fewer tests per frame.
_ETH_IPV4_TCP = struct.Struct("!12xIHxxI2x12sI4xBB")
_ACK = struct.Struct("!I")
_USUAL_MIN = 54  # 14 + 20 + 20
_ETH_IPV4_NO_OPTIONS = 0x080045  # the first number without its TOS byte
_NOT_FRAGMENT_TCP = 0x3FFF00FF  # fragment offset, more-fragments flag, protocol
_ACK_AT = 42
# Data offset byte -> where the payload starts in the frame (14 + 20 + TCP header).
_PAYLOAD_AT = tuple(34 + (data_offset >> 4) * 4 for data_offset in range(256))

NOT_IP = -1


@dataclass
class DissectCounts:
    """Frames the analysis could not use, by reason: reported, never fatal."""

    not_ip: int = 0
    not_tcp: int = 0
    ip_fragments: int = 0
    too_short: int = 0
    cut_by_snaplen: int = 0
    frames: int = 0
    tcp_segments: int = 0
    unknown_link_types: frozenset[int] = frozenset()


def _ethernet(data: bytes) -> int:
    ethertype = (data[12] << 8) | data[13]
    offset = 14
    while ethertype in VLAN_ETHERTYPES:  # 802.1Q / QinQ tags are 4 bytes each
        ethertype = (data[offset + 2] << 8) | data[offset + 3]
        offset += 4
    return offset if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6) else NOT_IP


def _linux_sll(data: bytes) -> int:
    return 16 if _ushort(data, 14)[0] in (ETHERTYPE_IPV4, ETHERTYPE_IPV6) else NOT_IP


def _linux_sll2(data: bytes) -> int:
    return 20 if _ushort(data, 0)[0] in (ETHERTYPE_IPV4, ETHERTYPE_IPV6) else NOT_IP


def _raw_ip(data: bytes) -> int:
    return 0


def _loopback(data: bytes) -> int:
    # The 4-byte address family is in the capturing host's byte order: trust the IP version.
    return 4 if data[4] >> 4 in (4, 6) else NOT_IP


LINK_DECODERS: dict[int, Callable[[bytes], int]] = {
    0: _loopback,
    1: _ethernet,
    12: _raw_ip,
    14: _raw_ip,
    101: _raw_ip,
    108: _loopback,
    113: _linux_sll,
    228: _raw_ip,
    229: _raw_ip,
    276: _linux_sll2,
}


def _skip_ipv6_extensions(data: bytes, offset: int, next_header: int) -> tuple[int, int]:
    """Return (offset, protocol) after the extension headers; protocol -1 for a fragment."""
    while True:
        if next_header in IPV6_SKIPPABLE:
            next_header, length = data[offset], (data[offset + 1] + 1) * 8
        elif next_header == IPV6_AH:
            next_header, length = data[offset], (data[offset + 1] + 2) * 4
        elif next_header == IPV6_FRAGMENT:
            if _ushort(data, offset + 2)[0] & 0xFFF9:  # offset or more-fragments set
                return offset, -1
            next_header, length = data[offset], 8  # an atomic fragment is whole
        else:
            return offset, next_header
        offset += length


def _locate_tcp(decode: Callable[[bytes], int], data: bytes):
    """Return (addresses, TCP offset, IP end) or the reason the frame is not TCP/IP.

    ``addresses`` is the packed source address followed by the destination address.
    """
    offset = decode(data)
    if offset < 0:
        return "not_ip"
    version = data[offset] >> 4
    if version == 4:
        ver_ihl, length, fragment, protocol = _ipv4(data, offset)
        if protocol != TCP:
            return "not_tcp"
        if fragment & 0x3FFF:  # more-fragments flag or an offset: not reassembled
            return "ip_fragments"
        # length 0 is what TSO captures show for large segments
        end = offset + length if length else len(data)
        return data[offset + 12:offset + 20], offset + (ver_ihl & 15) * 4, end
    if version == 6:
        length, protocol = _ipv6(data, offset)
        l4 = offset + 40
        end = l4 + length if length else len(data)
        if protocol != TCP:
            l4, protocol = _skip_ipv6_extensions(data, l4, protocol)
            if protocol != TCP:
                return "ip_fragments" if protocol == -1 else "not_tcp"
        return data[offset + 8:offset + 40], l4, end
    return "not_ip"


class Dissector:
    """Dissects any frame the slow, general way and hands its TCP segment to the tracker.

    ``follow_pcap`` keeps the usual Ethernet/IPv4/TCP frame of a classic pcap file for
    itself and sends everything else here; pcapng frames all come here.
    """

    def __init__(self, tracker: TcpTracker, counts: DissectCounts):
        self.tracker = tracker
        self.counts = counts
        self.skipped: Counter[str] = Counter()
        self.unknown_link_types: set[int] = set()
        self.segments = 0
        self.cut = 0
        self._link_type: int | None = None
        self._decode: Callable[[bytes], int] | None = None

    def frame(self, frame: int, ts: float, link_type: int, data: bytes) -> None:
        if link_type != self._link_type:
            self._link_type, self._decode = link_type, LINK_DECODERS.get(link_type)
        if self._decode is None:
            self.unknown_link_types.add(link_type)
            return
        try:
            located = _locate_tcp(self._decode, data)
            if isinstance(located, str):
                self.skipped[located] += 1
                return
            addresses, l4, end = located
            seq, ack, data_offset, flags = _tcp(data, l4)
            ports = data[l4:l4 + 4]
            if len(ports) < 4:
                raise IndexError
        except (struct.error, IndexError):
            self.skipped["too_short"] += 1
            return
        self.segments += 1
        start = l4 + (data_offset >> 4) * 4
        if end < start:  # a bogus IP length shorter than the headers
            self.skipped["too_short"] += 1
            return
        if end == start and not flags & SYN_FIN_RST and not self.tracker.holding:
            return  # a bare ACK: only needed while a hole waits to be acknowledged
        payload = data[start:end]
        missing = end - start - len(payload)
        if missing:
            self.cut += 1
        self.tracker.segment(frame, ts, addresses + ports, seq, ack, flags, payload, missing)

    def done(self, frames: int, usual_segments: int) -> None:
        counts, skipped = self.counts, self.skipped
        counts.not_ip, counts.not_tcp = skipped["not_ip"], skipped["not_tcp"]
        counts.ip_fragments, counts.too_short = skipped["ip_fragments"], skipped["too_short"]
        counts.cut_by_snaplen = self.cut
        counts.unknown_link_types = frozenset(self.unknown_link_types)
        counts.frames, counts.tcp_segments = frames, self.segments + usual_segments


def follow_frames(frames: Iterable[tuple[float, int, bytes]], tracker: TcpTracker,
                  counts: DissectCounts) -> int:
    """Dissect frames one by one (pcapng); return how many there were."""
    dissector = Dissector(tracker, counts)
    number = 0
    try:
        for number, (ts, link_type, data) in enumerate(frames, 1):
            dissector.frame(number, ts, link_type, data)
    finally:
        dissector.done(number, 0)
    return number


class Walk:
    """What walking the records of a classic pcap file needs, and its counts so far."""

    def __init__(self, tracker: TcpTracker, counts: DissectCounts, link_type: int,
                 unit: float, endian: str):
        self.tracker = tracker
        self.dissector = Dissector(tracker, counts)
        self.link_type = link_type
        self.unit = unit  # seconds per unit of a record's second timestamp field
        self.endian = endian  # of the record headers: "<" or ">"
        self.record = struct.Struct(endian + "III4x").unpack_from  # seconds, fraction, length
        self.usual_min = _USUAL_MIN if link_type == ETHERNET else 1 << 62  # else: no usual
        self.frame = 0  # records walked
        self.unusual = 0  # of them, frames that took the general path


def follow_pcap(blocks: PcapBlocks, link_type: int, unit: float, tracker: TcpTracker,
                counts: DissectCounts) -> int:
    """Walk the records of a classic pcap file, block by block; return how many there were.

    Each block is walked by ``walk_block``: the compiled one (``lab.analysis._walk``, built
    by ``make install``) when it is there, else ``walk_block_python``, which it mirrors.
    """
    walk = Walk(tracker, counts, link_type, unit, blocks.endian)
    block = blocks.refill(b"")
    try:
        while block:
            block = blocks.refill(block[walk_block(block, walk):])
    finally:
        walk.dissector.done(walk.frame, walk.frame - walk.unusual)
    return walk.frame


def walk_block_python(block: bytes, walk: Walk) -> int:
    """Walk the whole records at the start of ``block``; return where the first record not
    wholly in it starts (``walk.frame`` and ``walk.unusual`` count on).

    The hot loop of the analyser: it runs once per frame. The usual frame (Ethernet, IPv4
    without options, TCP, not cut by the snapshot length) is dissected with one
    ``unpack_from`` at its offset in the block. Then a bare ACK is dropped unless a hole
    waits for one, and a segment that continues its direction in order goes straight to
    that direction's HTTP parser (a whole head at its start straight to the head parser:
    ``HttpParser.feed``'s first case, without its call and loop); any other segment goes
    through ``TcpTracker.segment``, and any other frame through ``Dissector``. A frame's
    bytes are never copied: only its 12-byte direction key (by the ``unpack_from``) and its
    payload are taken out.
    """
    record = walk.record
    usual_frame = _ETH_IPV4_TCP.unpack_from
    ack_of = _ACK.unpack_from
    payload_at = _PAYLOAD_AT
    tracker, general = walk.tracker, walk.dissector.frame
    link_type, unit = walk.link_type, walk.unit
    follow = tracker.segment
    directions = tracker.directions
    usual_min = walk.usual_min
    holding = tracker.holding  # changes only inside follow() and general()
    frame, unusual = walk.frame, walk.unusual
    size, at = len(block), 0
    last = size - RECORD_HEADER  # where the last record header may start
    try:
        while at <= last:
            sec, usec, caplen = record(block, at)
            data = at + RECORD_HEADER
            end = data + caplen
            if end > size:
                break
            at = end
            frame += 1
            if caplen >= usual_min:
                eth_ip, ip_length, fragment_tcp, key, seq, data_offset, flags = \
                    usual_frame(block, data)
                start = data + payload_at[data_offset]
                stop = data + 14 + ip_length  # (an IP length of 0, from TSO, fails below)
                if (eth_ip >> 8 == _ETH_IPV4_NO_OPTIONS
                        and fragment_tcp & _NOT_FRAGMENT_TCP == TCP
                        and start <= stop <= end):
                    if not flags & SYN_FIN_RST and not holding:
                        if start == stop:
                            continue  # a bare ACK, and no hole waits for one
                        direction = directions.get(key)
                        if (direction is not None and seq == direction.next_seq
                                and (parser := direction.parser) is not None):
                            # (not masked to 32 bits: past a wrap, the next segment
                            # misses this test and TcpTracker.segment takes it)
                            direction.next_seq = seq + (stop - start)
                            ts = sec + usec * unit
                            # In order: straight to HTTP. The usual segment is one whole
                            # message: its head parsed here, as feed() would.
                            if parser.state == HEAD and not parser.buf:
                                head_end = block.find(b"\r\n\r\n", start, stop)
                                if 0 <= head_end - start <= MAX_HEAD:
                                    after = parser.parse_head(parser, block, start, head_end,
                                                              stop, ts, frame, frame, ts)
                                    if after == stop:
                                        continue
                                    if after >= 0:
                                        start = after
                            parser.feed(block, ts, frame, start, stop)
                            continue
                    follow(frame, sec + usec * unit, key, seq,
                           ack_of(block, data + _ACK_AT)[0], flags, block[start:stop], 0)
                    holding = tracker.holding
                    continue
            unusual += 1
            general(frame, sec + usec * unit, link_type, block[data:end])
            holding = tracker.holding
    finally:
        walk.frame, walk.unusual = frame, unusual
    return at


try:  # the same loop compiled with Cython (lab/analysis/_walk.pyx), if it was built
    from lab.analysis._walk import walk_block
except ImportError:
    walk_block = walk_block_python
