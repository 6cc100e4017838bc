"""Synthetic lab captures built with scapy, for the analyser's tests.

A client talks HTTP/1.1 to an nginx-like balancer, which forwards each request over
kept-alive connections to app servers, adding X-Request-ID like ``proxy_set_header
X-Request-ID $request_id``. Packets are built by scapy, independently of the analyser's
own hand-written dissector.
"""

from __future__ import annotations

import itertools
import random
import struct
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import PcapNgWriter, PcapWriter

CLIENT = "192.168.56.100"
BALANCER = "192.168.56.10"
APPS = {"app1": "192.168.56.11", "app2": "192.168.56.12", "app3": "192.168.56.13"}
NAMES = {CLIENT: "client", BALANCER: "balancer", **{ip: name for name, ip in APPS.items()}}
V6 = {CLIENT: "fd00:56::100", BALANCER: "fd00:56::10",
      **{ip: f"fd00:56::{ip.rsplit('.', 1)[1]}" for ip in APPS.values()}}
HTTP_PORT, APP_PORT = 80, 8000
LINK_TYPES = {"ethernet": 1, "vlan": 1, "sll": 113, "sll2": 276, "raw": 101, "raw12": 12}


def http_request(method: str = "GET", uri: str = "/", request_id: str | None = None,
                 body: bytes = b"") -> bytes:
    lines = [f"{method} {uri} HTTP/1.1", "Host: lab", "User-Agent: synth"]
    if request_id:
        lines.append(f"X-Request-ID: {request_id}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_response(status: int = 200, served_by: str | None = None, body: bytes = b"hello",
                  chunked: bool = False, request_id: str | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Server: synth"]
    if served_by:
        lines.append(f"X-Served-By: {served_by}")
    if request_id:
        lines.append(f"X-Request-ID: {request_id}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        half = len(body) // 2
        payload = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n"
                           for p in (body[:half], body[half:]) if p) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Wire:
    """The packets seen on the balancer's interface, each stamped by a steady clock."""

    def __init__(self, ipv6: bool = False, start: float = 1_700_000_000.0, step=0.0005):
        self.ipv6 = ipv6
        self.now = start
        self.step = step
        self.packets: list = []
        self._ports = itertools.count(40000)

    def ip(self, src: str, dst: str):
        if self.ipv6:
            return IPv6(src=V6[src], dst=V6[dst])
        return IP(src=src, dst=dst)

    def add(self, packet) -> None:
        packet.time = self.now
        self.now += self.step
        self.packets.append(packet)

    def connect(self, client: str, server: str, port: int) -> Tcp:
        return Tcp(self, client, next(self._ports), server, port)


class Tcp:
    """One TCP connection; ``send`` segments data and the receiver acknowledges it."""

    def __init__(self, wire: Wire, client: str, cport: int, server: str, sport: int,
                 isn: tuple[int, int] = (1000, 5000)):
        self.wire = wire
        self.ends = {True: (client, cport), False: (server, sport)}  # key: from_client
        self.seq = {True: isn[0], False: isn[1]}  # initial sequence numbers
        self._segment(True, "S", b"")
        self.seq[True] += 1
        self._segment(False, "SA", b"")
        self.seq[False] += 1
        self._segment(True, "A", b"")

    def _segment(self, from_client: bool, flags: str, data: bytes, seq: int | None = None):
        (src, sport), (dst, dport) = self.ends[from_client], self.ends[not from_client]
        seq = self.seq[from_client] if seq is None else seq
        ack = self.seq[not from_client] if "A" in flags else 0
        tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq & 0xFFFFFFFF,
                  ack=ack & 0xFFFFFFFF)  # sequence numbers wrap
        packet = self.wire.ip(src, dst) / tcp
        self.wire.add(packet / Raw(data) if data else packet)

    def send(self, from_client: bool, data: bytes, pieces: int = 1,
             retransmit: bool = False, reorder: bool = False, lose: bool = False) -> None:
        """Send ``data`` in ``pieces`` segments.

        retransmit: resend the first segment after the rest; reorder: send the first
        segment last; lose: leave the second segment out of the capture (as if tcpdump
        dropped it), the receiver still acknowledging everything.
        """
        cut = max(1, -(-len(data) // pieces))
        chunks = [(self.seq[from_client] + i, data[i:i + cut]) for i in range(0, len(data), cut)]
        order = chunks[1:] + chunks[:1] if reorder else list(chunks)
        if lose and len(order) > 1:
            del order[1]
        for seq, chunk in order:
            self._segment(from_client, "PA", chunk, seq=seq)
        if retransmit:
            self._segment(from_client, "PA", chunks[0][1], seq=chunks[0][0])
        self.seq[from_client] += len(data)
        self._segment(not from_client, "A", b"")

    def close(self) -> None:
        self._segment(True, "FA", b"")
        self.seq[True] += 1
        self._segment(False, "FA", b"")
        self.seq[False] += 1
        self._segment(True, "A", b"")


class Lab:
    """Client → balancer → apps traffic, one exchange (or batch of them) at a time."""

    def __init__(self, ipv6: bool = False, request_ids: bool = True, echo_id: bool = False,
                 client_keepalive: bool = False, delays: dict[str, float] | None = None):
        self.wire = Wire(ipv6)
        self.delays = delays or {}  # backend -> extra seconds before it answers
        self.request_ids = request_ids
        self.echo_id = echo_id  # the balancer repeats X-Request-ID in client responses
        self.client_keepalive = client_keepalive
        self._upstream: dict[tuple[str, int], Tcp] = {}
        self._client: Tcp | None = None
        self._ids = itertools.count(1)
        self._random = random.Random(56)

    def exchange(self, backend: str, method: str = "GET", uri: str | None = None,
                 body: bytes = b"", status: int = 200, **segmenting) -> None:
        """One request answered before the next starts (sequential traffic).

        The URI defaults to a fresh /item/N."""
        self.batch([backend], method, uri, body, status, **segmenting)

    def batch(self, backends: list[str], method: str = "GET", uri: str | None = None,
              body: bytes = b"", status: int = 200, chunked: bool = False,
              **segmenting) -> None:
        """Requests in flight together: all sent before any is answered (concurrency)."""
        uris = [uri or f"/item/{next(self._ids)}" for _ in backends]
        ids = [f"{self._random.getrandbits(128):032x}" for _ in backends]
        clients = [self._client_connection() for _ in backends]
        upstreams = [self._upstream_connection(b, slot) for slot, b in enumerate(backends)]
        for conn, u in zip(clients, uris, strict=True):
            conn.send(True, http_request(method, u, body=body), **segmenting)
        for conn, u, rid in zip(upstreams, uris, ids, strict=True):
            conn.send(True, http_request(method, u, rid if self.request_ids else None, body))
        for conn, b in zip(upstreams, backends, strict=True):
            self.wire.now += self.delays.get(b, 0.0)
            conn.send(False, http_response(status, b, chunked=chunked))
        for conn, rid in zip(clients, ids, strict=True):
            echoed = rid if self.echo_id else None
            conn.send(False, http_response(status, chunked=chunked, request_id=echoed))
            if not self.client_keepalive:
                conn.close()

    def _client_connection(self) -> Tcp:
        if not self.client_keepalive:
            return self.wire.connect(CLIENT, BALANCER, HTTP_PORT)
        if self._client is None:
            self._client = self.wire.connect(CLIENT, BALANCER, HTTP_PORT)
        return self._client

    def _upstream_connection(self, backend: str, slot: int) -> Tcp:
        key = (backend, slot)
        if key not in self._upstream:
            self._upstream[key] = self.wire.connect(BALANCER, APPS[backend], APP_PORT)
        return self._upstream[key]


def sequential_lab(backends: list[str], **options) -> Lab:
    lab = Lab(**options)
    for backend in backends:
        lab.exchange(backend)
    return lab


def rotation(count: int, order=("app1", "app2", "app3"), start: int = 0) -> list[str]:
    return [order[(start + i) % len(order)] for i in range(count)]


# -- writing files ---------------------------------------------------------------------


def framed(packet, link: str):
    """Wrap an IP packet in the link layer of ``link``."""
    proto = 0x86DD if packet.haslayer(IPv6) else 0x0800
    if link == "ethernet":
        return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / packet
    if link == "vlan":
        return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / Dot1Q(vlan=56) / packet
    if link == "sll":
        return CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, proto=proto) / packet
    if link == "sll2":
        return CookedLinuxV2(proto=proto, lladdrtype=1, lladdrlen=6) / packet
    return packet  # raw IP


def with_hop_by_hop(packet):
    """Insert an IPv6 hop-by-hop extension header before TCP."""
    ip = packet[IPv6]
    return IPv6(src=ip.src, dst=ip.dst) / IPv6ExtHdrHopByHop() / ip.payload


def write_pcap(path: Path, packets, link: str = "ethernet", endian: str = "<",
               nano: bool = False, snaplen: int = 0) -> Path:
    writer = PcapWriter(str(path), linktype=LINK_TYPES[link], endianness=endian, nano=nano,
                        sync=False)
    writer.write_header(None)
    for packet in packets:
        frame = framed(packet, link)
        frame.time = packet.time
        data = bytes(frame)
        if snaplen:
            writer.write_packet(data[:snaplen], sec=int(packet.time),
                                usec=int(round(packet.time % 1 * 1e6)),
                                caplen=min(len(data), snaplen), wirelen=len(data))
        else:
            writer.write(frame)
    writer.close()
    return Path(path)


def write_pcapng_scapy(path: Path, packets, link: str = "ethernet") -> Path:
    writer = PcapNgWriter(str(path))
    for packet in packets:
        frame = framed(packet, link)
        frame.time = packet.time
        writer.write(frame)
    writer.close()
    return Path(path)


def write_pcapng_by_hand(path: Path, packets, link: str = "ethernet", endian: str = ">",
                         nanoseconds: bool = True) -> Path:
    """pcapng written block by block, in either byte order (scapy writes little only)."""

    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        length = 12 + len(body)
        return struct.pack(endian + "II", kind, length) + body + struct.pack(endian + "I", length)

    shb = struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    options = b""
    if nanoseconds:  # if_tsresol = 9: timestamps in nanoseconds
        options = struct.pack(endian + "HH", 9, 1) + b"\x09\0\0\0"
        options += struct.pack(endian + "HH", 0, 0)
    idb = struct.pack(endian + "HHI", LINK_TYPES[link], 0, 262144) + options
    out = [block(0x0A0D0D0A, shb), block(1, idb)]
    scale = 10**9 if nanoseconds else 10**6
    for packet in packets:
        data = bytes(framed(packet, link))
        stamp = int(round(float(packet.time) * scale))
        epb = struct.pack(endian + "IIIII", 0, stamp >> 32, stamp & 0xFFFFFFFF,
                          len(data), len(data)) + data
        out.append(block(6, epb))
    Path(path).write_bytes(b"".join(out))
    return Path(path)


# -- big captures, fast ----------------------------------------------------------------


class FastPcap:
    """Writes Ethernet/IPv4/TCP frames with struct: ~100x faster than building with scapy.

    For benchmarks only (checksums are left zero); the tests use scapy-built packets.
    """

    def __init__(self, path: Path, start: float = 1_700_000_000.0, step: float = 0.00005):
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.file.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.now, self.step, self.packets = start, step, 0
        self.ethernet = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"

    def frame(self, src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int,
              flags: int, data: bytes = b"") -> None:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(data), 0, 0x4000, 64, 6, 0,
                         src, dst)
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          0x50, flags, 65535, 0, 0)
        frame = self.ethernet + ip + tcp + data
        sec, usec = divmod(int(self.now * 1e6), 1_000_000)
        self.file.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
        self.now += self.step
        self.packets += 1

    def close(self) -> None:
        self.file.close()


class FastTcp:
    def __init__(self, pcap: FastPcap, client: str, cport: int, server: str, sport: int):
        self.pcap = pcap
        self.ends = {True: (_packed(client), cport), False: (_packed(server), sport)}
        self.seq = {True: 1000, False: 5000}
        self._send_flags(True, 0x02)
        self.seq[True] += 1
        self._send_flags(False, 0x12)
        self.seq[False] += 1
        self._send_flags(True, 0x10)

    def _send_flags(self, from_client: bool, flags: int, data: bytes = b"") -> None:
        (src, sport), (dst, dport) = self.ends[from_client], self.ends[not from_client]
        self.pcap.frame(src, sport, dst, dport, self.seq[from_client],
                        self.seq[not from_client], flags, data)

    def send(self, from_client: bool, data: bytes) -> None:
        self._send_flags(from_client, 0x18, data)
        self.seq[from_client] += len(data)
        self._send_flags(not from_client, 0x10)

    def close(self) -> None:
        self._send_flags(True, 0x11)
        self.seq[True] += 1
        self._send_flags(False, 0x11)
        self.seq[False] += 1
        self._send_flags(True, 0x10)


def _packed(address: str) -> bytes:
    return bytes(int(part) for part in address.split("."))


def write_fast_lab_capture(path: Path, backends: list[str]) -> int:
    """Sequential lab traffic, one client connection per request: 14 frames per request."""
    pcap = FastPcap(path)
    rng = random.Random(56)
    upstream: dict[str, FastTcp] = {}
    for number, backend in enumerate(backends):
        uri = f"/products/{number % 1000}"
        conn = FastTcp(pcap, CLIENT, 10000 + number % 50000, BALANCER, HTTP_PORT)
        conn.send(True, http_request("GET", uri))
        if backend not in upstream:
            upstream[backend] = FastTcp(pcap, BALANCER, 9000 + len(upstream), APPS[backend],
                                        APP_PORT)
        request_id = f"{rng.getrandbits(128):032x}"
        upstream[backend].send(True, http_request("GET", uri, request_id))
        upstream[backend].send(False, http_response(200, backend, b"x" * 900))
        conn.send(False, http_response(200, body=b"x" * 900))
        conn.close()
    pcap.close()
    return pcap.packets


def write_fast_concurrent_capture(path: Path, rounds: int, width: int = 4,
                                  order=("app1", "app2", "app3"), echo_id: bool = True,
                                  body: bytes = b"x" * 300) -> int:
    """Concurrent lab traffic: each round, ``width`` requests in flight at once, on kept-alive
    client connections, forwarded round-robin over kept-alive upstream connections (one
    per backend and slot). nginx echoes X-Request-ID to the client if ``echo_id``.
    Returns the number of frames."""
    pcap = FastPcap(path)
    rng = random.Random(56)
    clients = [FastTcp(pcap, CLIENT, 20000 + slot, BALANCER, HTTP_PORT) for slot in range(width)]
    upstream: dict[tuple[str, int], FastTcp] = {}
    number = 0
    for _ in range(rounds):
        batch = []
        for slot, client in enumerate(clients):
            backend = order[number % len(order)]
            uri = f"/products/{number % 997}/"
            request_id = f"{rng.getrandbits(128):032x}"
            key = (backend, slot)
            if key not in upstream:
                upstream[key] = FastTcp(pcap, BALANCER, 30000 + len(upstream), APPS[backend],
                                        APP_PORT)
            batch.append((client, upstream[key], backend, uri, request_id))
            number += 1
        for client, _, _, uri, _ in batch:
            client.send(True, http_request("GET", uri))
        for _, conn, _, uri, request_id in batch:
            conn.send(True, http_request("GET", uri, request_id))
        for _, conn, backend, _, _ in batch:
            conn.send(False, http_response(200, backend, body))
        for client, _, backend, _, request_id in batch:
            client.send(False, http_response(200, backend, body,
                                             request_id=request_id if echo_id else None))
    pcap.close()
    return pcap.packets
