"""From a capture file to the HTTP requests on its wire, in one streaming pass."""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from dataclasses import dataclass, field

from lab.analysis.capture import CaptureFile, link_type_name
from lab.analysis.dissect import LINK_DECODERS, DissectCounts, follow_frames, follow_pcap
from lab.analysis.errors import CaptureError
from lab.analysis.http import HttpLog, HttpRequest
from lab.analysis.order import FrameOrder, RequestSink
from lab.analysis.tcp import TcpTracker

CAPTURE_HINT = (
    "capture on the balancer with tcpdump -i IFACE --immediate-mode -w FILE "
    "'tcp port 80 or tcp port 8000'"
)


@dataclass
class WireStats:
    """What reading the capture found besides the requests themselves."""

    path: str
    format: str
    link_types: list[str]
    packets: int
    tcp_segments: int
    connections: int
    retransmissions: int
    bytes_not_captured: int
    orphan_responses: int
    resyncs: int
    requests: int  # HTTP requests of every route
    truncated: str  # empty when the file ended cleanly
    dissect: DissectCounts
    reader_warnings: list[str] = field(default_factory=list)


def read_wire(path: str | os.PathLike, sink: RequestSink) -> WireStats:
    """Read the whole capture once, announcing every HTTP request to ``sink`` in frame
    order: ``sink.started(request)`` once its head is complete, ``sink.done(request)``
    when its exchange is over. Nothing is kept here: ``sink`` keeps what it wants."""
    path = os.fspath(path)
    order = FrameOrder(sink)
    log = HttpLog(order)
    tracker = TcpTracker(log)
    counts = DissectCounts()
    with CaptureFile(path) as capture, _cyclic_gc_paused():
        if capture.format == "pcap":
            frames = follow_pcap(capture.blocks(), capture.link_type, capture.timestamp_unit,
                                 tracker, counts)
        else:
            frames = follow_frames(capture.frames(), tracker, counts)
        capture.done(frames)
        tracker.finish()
        order.finish()
    stats = WireStats(
        path=path,
        format=capture.format + (" (gzip)" if capture.compressed else ""),
        link_types=[link_type_name(lt) for lt, _ in capture.link_types.most_common()],
        packets=capture.frames_read,
        tcp_segments=counts.tcp_segments,
        connections=tracker.connections,
        retransmissions=tracker.retransmissions,
        bytes_not_captured=tracker.bytes_not_captured,
        orphan_responses=log.orphan_responses,
        resyncs=log.resyncs,
        requests=log.requests,
        truncated=capture.truncated,
        dissect=counts,
        reader_warnings=capture.reader_warnings,
    )
    _refuse_useless(stats)
    return stats


@contextmanager
def _cyclic_gc_paused():
    """Reading makes no reference cycles (a connection's two directions let go of each
    other when it is closed), so the cyclic garbage collector would free nothing: its
    passes over the requests in flight cost ~10% of the time. Refcounting frees all."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Collector:
    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    def started(self, request: HttpRequest) -> None:
        self.requests.append(request)

    def done(self, request: HttpRequest) -> None:
        pass


def read_http(path: str | os.PathLike) -> tuple[list[HttpRequest], WireStats]:
    """Every HTTP request of the capture, in order of first frame, and the reading stats.

    Keeps every request (~1 KB each): for tests and small captures; ``analyse`` streams.
    """
    collector = _Collector()
    stats = read_wire(path, collector)
    return collector.requests, stats


def _refuse_useless(stats: WireStats) -> None:
    path = stats.path
    if stats.packets == 0:
        damage = f" ({stats.truncated})" if stats.truncated else ""
        raise CaptureError(f"capture {path} holds no packets{damage}: {CAPTURE_HINT}")
    unknown = stats.dissect.unknown_link_types
    if unknown and stats.tcp_segments == 0:
        names = ", ".join(link_type_name(lt) for lt in sorted(unknown))
        known = ", ".join(str(lt) for lt in sorted(LINK_DECODERS))
        raise CaptureError(
            f"capture {path} uses link type {names}, which the analyser does not decode "
            f"(it reads {known}): capture on an Ethernet interface or with tcpdump -i any"
        )
    if not stats.requests:
        raise CaptureError(
            f"no HTTP/1.x requests in capture {path} ({stats.packets} packets, "
            f"{stats.tcp_segments} TCP segments): {CAPTURE_HINT}"
        )
