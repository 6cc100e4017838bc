"""Hand dissection of link, IP and TCP headers: only the fields the analysis needs.

A frame becomes one tuple (see ``tcp_segments``); anything that is not TCP over IPv4/IPv6
is counted and dropped.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})
TCP = 6
IPV6_FRAGMENT = 44
IPV6_AH = 51
IPV6_SKIPPABLE = frozenset({0, 43, 60, 135, 139, 140, 253, 254})  # hop-by-hop, routing, ...

_ipv4 = struct.Struct("!BxHxxHxB2x4s4s").unpack_from  # ver/ihl, length, frag, proto, src, dst
_ipv6 = struct.Struct("!4xHBx16s16s").unpack_from  # payload length, next header, src, dst
_tcp = struct.Struct("!HHIIBB").unpack_from  # ports, seq, ack, data offset, flags
_ushort = struct.Struct("!H").unpack_from


# The usual frame in one unpack: untagged Ethernet, 20-byte IPv4 header, TCP.
_eth_ipv4_tcp = struct.Struct("!12xHBxHxxHxB2x4s4sHHIIBB").unpack_from

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
    """Return (src, dst, TCP offset, IP end) or the reason the frame is not TCP/IP."""
    offset = decode(data)
    if offset < 0:
        return "not_ip"
    version = data[offset] >> 4
    if version == 4:
        ver_ihl, length, frag, proto, src, dst = _ipv4(data, offset)
        if proto != TCP:
            return "not_tcp"
        if frag & 0x3FFF:  # more-fragments flag or an offset: not reassembled
            return "ip_fragments"
        # length 0 is what TSO captures show for large segments
        return src, dst, offset + (ver_ihl & 15) * 4, offset + length if length else len(data)
    if version == 6:
        length, proto, src, dst = _ipv6(data, offset)
        l4 = offset + 40
        end = l4 + length if length else len(data)
        if proto != TCP:
            l4, proto = _skip_ipv6_extensions(data, l4, proto)
            if proto != TCP:
                return "ip_fragments" if proto == -1 else "not_tcp"
        return src, dst, l4, end
    return "not_ip"


def tcp_segments(
    frames: Iterable[tuple[float, int, bytes]],
    counts: DissectCounts,
    bare_acks_wanted: Callable[[], bool] = lambda: True,
) -> Iterator[tuple]:
    """Yield (frame, ts, src, sport, dst, dport, seq, ack, flags, payload, missing).

    src/dst are packed addresses (4 or 16 bytes); ``missing`` is how many payload bytes
    the snapshot length cut off. Segments with no data and no SYN/FIN/RST (about half of
    a capture) are skipped unless ``bare_acks_wanted()``. Kept as one flat loop, with a
    single unpack for the usual Ethernet/IPv4/TCP frame: it runs once per frame.
    """
    skipped: Counter[str] = Counter()
    unknown: set[int] = set()
    last_link_type, decode = None, None
    frame = segments = cut = 0
    try:
        for frame, (ts, link_type, data) in enumerate(frames, 1):
            if link_type != last_link_type:
                last_link_type, decode = link_type, LINK_DECODERS.get(link_type)
            if decode is None:
                unknown.add(link_type)
                continue
            try:
                if link_type == 1 and len(data) >= 48:
                    (ethertype, ver_ihl, length, frag, proto, src, dst, sport, dport, seq, ack,
                     data_offset, flags) = _eth_ipv4_tcp(data)
                    usual = ethertype == ETHERTYPE_IPV4 and ver_ihl == 0x45 and proto == TCP \
                        and not frag & 0x3FFF
                else:
                    usual = False
                if usual:
                    l4, end = 34, 14 + length if length else len(data)
                else:
                    located = _locate_tcp(decode, data)
                    if isinstance(located, str):
                        skipped[located] += 1
                        continue
                    src, dst, l4, end = located
                    sport, dport, seq, ack, data_offset, flags = _tcp(data, l4)
            except (struct.error, IndexError):
                skipped["too_short"] += 1
                continue
            segments += 1
            start = l4 + (data_offset >> 4) * 4
            if end == start and not flags & 0x07 and not bare_acks_wanted():
                continue
            if end < start:  # a bogus IP length shorter than the headers
                skipped["too_short"] += 1
                continue
            payload = data[start:end]
            missing = end - start - len(payload)
            if missing:
                cut += 1
            yield frame, ts, src, sport, dst, dport, seq, ack, flags, payload, missing
    finally:
        counts.not_ip, counts.not_tcp = skipped["not_ip"], skipped["not_tcp"]
        counts.ip_fragments, counts.too_short = skipped["ip_fragments"], skipped["too_short"]
        counts.cut_by_snaplen = cut
        counts.unknown_link_types = frozenset(unknown)
        counts.frames, counts.tcp_segments = frame, segments
