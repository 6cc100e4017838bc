"""Open a pcap or pcapng file and stream its frames with scapy's raw readers.

Only the raw readers are used: building a scapy packet per frame is ~100x slower.
The file is never held in memory; frames are yielded one at a time.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from scapy.error import Scapy_Exception
from scapy.utils import RawPcapNgReader, RawPcapReader

from lab.analysis.errors import CaptureError

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "pcap",  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": "pcap",  # big-endian, microseconds
    b"\x4d\x3c\xb2\xa1": "pcap (ns)",
    b"\xa1\xb2\x3c\x4d": "pcap (ns)",
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
PCAP_HEADER_SIZE = 24
PCAPNG_MIN_SHB_SIZE = 28

# scapy clips frames to 64 KiB by default; GRO/TSO and loopback frames can be larger.
MAX_FRAME = 256 * 1024

LINK_TYPE_NAMES = {
    0: "NULL (BSD loopback)",
    1: "Ethernet",
    12: "raw IP",
    14: "raw IP",
    101: "raw IP",
    108: "LOOP (OpenBSD loopback)",
    113: "Linux cooked (SLL)",
    228: "raw IPv4",
    229: "raw IPv6",
    276: "Linux cooked v2 (SLL2)",
}

FIX_HINT = "give a file written by tcpdump -w or saved by Wireshark (pcap or pcapng)"


def link_type_name(link_type: int) -> str:
    return f"{LINK_TYPE_NAMES.get(link_type, 'unknown')} ({link_type})"


class CaptureFile:
    """One opened capture: yields (timestamp, link type, frame bytes) and keeps counts."""

    def __init__(self, path: str):
        self.path = path
        self.size = _checked_size(path)
        magic = _read_head(path, PCAPNG_MIN_SHB_SIZE)
        self.compressed = magic.startswith(GZIP_MAGIC)
        if self.compressed:
            magic = _read_gzip_head(path, PCAPNG_MIN_SHB_SIZE)
        self.format = _format_of(path, magic)
        self.frames_read = 0
        self.link_types: Counter[int] = Counter()
        self.truncated = ""  # what was damaged at the end of the file, if anything
        self.reader_warnings: list[str] = []
        with _scapy_warnings(self.reader_warnings):
            self._reader = _open_reader(path, self.format)

    def frames(self) -> Iterator[tuple[float, int, bytes]]:
        with _scapy_warnings(self.reader_warnings):
            if self.format == "pcapng":
                yield from self._pcapng_frames()
            else:
                yield from self._pcap_frames()
        self._check_tail()

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _pcap_frames(self) -> Iterator[tuple[float, int, bytes]]:
        reader = self._reader
        read = reader._read_packet  # __next__ would clip frames to 64 KiB
        scale = 1e-9 if reader.nano else 1e-6
        link_type = reader.linktype
        count = 0
        good_end = PCAP_HEADER_SIZE  # counted, not f.tell(): that is a syscall per frame
        try:
            while True:
                try:
                    data, meta = read(MAX_FRAME)
                except EOFError:
                    return
                count += 1
                good_end += 16 + meta.caplen
                if len(data) < meta.caplen and len(data) < MAX_FRAME:
                    self.truncated = (
                        f"frame {count} is cut short ({len(data)} of {meta.caplen} bytes)"
                    )
                yield meta.sec + meta.usec * scale, link_type, data
        finally:
            self.frames_read = count
            self.link_types[link_type] = count
            self._good_end = good_end

    def _pcapng_frames(self) -> Iterator[tuple[float, int, bytes]]:
        reader = self._reader
        read = reader._read_packet
        link_types = self.link_types
        count = 0
        try:
            while True:
                try:
                    data, meta = read(MAX_FRAME)
                except EOFError:
                    return
                count += 1
                link_types[meta.linktype] += 1
                yield ((meta.tshigh << 32) | meta.tslow) / meta.tsresol, meta.linktype, data
        finally:
            self.frames_read = count

    def _check_tail(self) -> None:
        """Notice an incomplete last record: tcpdump killed mid-write leaves one."""
        if self.compressed or self.truncated:
            return
        if self.format == "pcapng":
            if not _ends_on_pcapng_block(self.path, self.size, self._reader.endian):
                self.truncated = "the file ends inside a pcapng block"
        elif self._good_end < self.size:
            missing = self.size - self._good_end
            self.truncated = f"the last {missing} bytes are an incomplete record"


def _ends_on_pcapng_block(path: str, size: int, endian: str) -> bool:
    """A whole last block repeats its length at its start and in its last 4 bytes."""
    with open(path, "rb") as f:
        f.seek(size - 4)
        (length,) = struct.unpack(endian + "I", f.read(4))
        if length < 12 or length > size or length % 4:
            return False
        f.seek(size - length + 4)
        return f.read(4) == struct.pack(endian + "I", length)


def _checked_size(path: str) -> int:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise CaptureError(f"capture {path} does not exist: {FIX_HINT}") from None
    except OSError as err:
        raise CaptureError(f"cannot read capture {path}: {err.strerror}: {FIX_HINT}") from None
    if os.path.isdir(path):
        raise CaptureError(f"capture {path} is a directory: {FIX_HINT}")
    if size == 0:
        raise CaptureError(
            f"capture {path} is empty (0 bytes): tcpdump wrote nothing; "
            "capture again with tcpdump --immediate-mode -w FILE and stop it with Ctrl-C"
        )
    return size


def _read_head(path: str, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError as err:
        raise CaptureError(f"cannot read capture {path}: {err.strerror}: {FIX_HINT}") from None


def _read_gzip_head(path: str, size: int) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read(size)
    except (OSError, EOFError) as err:
        raise CaptureError(f"capture {path} is a damaged gzip file ({err}): {FIX_HINT}") from None


def _format_of(path: str, head: bytes) -> str:
    magic = head[:4]
    if magic in PCAP_MAGICS:
        if len(head) < PCAP_HEADER_SIZE:
            raise CaptureError(
                f"capture {path} is truncated inside its pcap header ({len(head)} of "
                f"{PCAP_HEADER_SIZE} bytes): no packet was saved; capture again"
            )
        return "pcap"
    if magic == PCAPNG_MAGIC:
        if len(head) < PCAPNG_MIN_SHB_SIZE:
            raise CaptureError(
                f"capture {path} is truncated inside its pcapng section header "
                f"({len(head)} bytes): no packet was saved; capture again"
            )
        return "pcapng"
    shown = head[:8].hex(" ")
    raise CaptureError(
        f"{path} is not a pcap or pcapng capture (it starts with {shown}): {FIX_HINT}"
    )


def _open_reader(path: str, file_format: str) -> RawPcapReader:
    reader_class = RawPcapNgReader if file_format == "pcapng" else RawPcapReader
    try:
        return reader_class(path)
    except (Scapy_Exception, EOFError, OSError) as err:
        raise CaptureError(
            f"capture {path} has a damaged {file_format} header ({err}): no packet can be "
            "read; capture again"
        ) from None


class _ListHandler(logging.Handler):
    def __init__(self, messages: list[str]):
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < 20:
            self.messages.append(record.getMessage())


@contextmanager
def _scapy_warnings(messages: list[str]):
    """Collect scapy's reader warnings for the result instead of printing them."""
    logger = logging.getLogger("scapy.runtime")
    handler = _ListHandler(messages)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
