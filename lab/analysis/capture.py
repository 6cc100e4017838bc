"""Open a pcap or pcapng file with scapy's raw readers and stream its records.

scapy opens every capture: its ``RawPcapReader``/``RawPcapNgReader`` checks the magic and the
file header (byte order, timestamp unit, link type) and reads gzip-compressed files. Then:

- pcapng: records come from ``RawPcapNgReader`` one at a time (``frames()``);
- classic pcap: records are read in 1 MiB blocks from the file scapy opened, right after
  the header it read (``blocks()``): ``RawPcapReader._read_packet`` costs a read(16), a
  read(caplen) and a namedtuple per record, more than the rest of the analysis of a frame.

Nothing builds a scapy packet (~100x slower), and the file is never held in memory: one
block at a time.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import zlib
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
BLOCK = 1 << 20  # bytes read at a time from a classic pcap file
RECORD_HEADER = 16

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
    """One opened capture: its records (``blocks()`` for pcap, ``frames()`` for pcapng) and
    what was found about the file (format, link types, a damaged end)."""

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
        self._blocks: PcapBlocks | None = None
        with _scapy_warnings(self.reader_warnings):
            self._reader = _open_reader(path, self.format)

    @property
    def link_type(self) -> int:
        """The link type of a classic pcap file (pcapng gives one per interface)."""
        return self._reader.linktype

    @property
    def timestamp_unit(self) -> float:
        """Seconds per unit of a classic pcap record's second field."""
        return 1e-9 if self._reader.nano else 1e-6

    def frames(self) -> Iterator[tuple[float, int, bytes]]:
        """(timestamp, link type, frame bytes) of every pcapng record, one at a time."""
        if self.format != "pcapng":
            raise ValueError("frames() reads pcapng; read classic pcap with blocks()")
        with _scapy_warnings(self.reader_warnings):
            yield from self._pcapng_frames()
        self._check_tail()

    def blocks(self) -> PcapBlocks:
        """The classic pcap records, in large blocks: see ``PcapBlocks``."""
        if self.format != "pcap":
            raise ValueError("blocks() reads classic pcap; read pcapng with frames()")
        self._blocks = PcapBlocks(self._reader.f, self._reader.endian, self.reader_warnings)
        return self._blocks

    def done(self, frames: int) -> None:
        """The caller read ``frames`` records: note a damaged end of a classic pcap file."""
        self.frames_read = frames
        blocks = self._blocks
        if blocks is None:
            return
        self.link_types[self.link_type] = frames
        if blocks.cut_short:
            have, announced = blocks.cut_short
            self.truncated = f"frame {frames} is cut short ({have} of {announced} bytes)"
        elif blocks.incomplete_tail:
            self.truncated = f"the last {blocks.incomplete_tail} bytes are an incomplete record"

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
        """Notice an incomplete last pcapng block: tcpdump killed mid-write leaves one."""
        if self.compressed or self.truncated:
            return
        if not _ends_on_pcapng_block(self.path, self.size, self._reader.endian):
            self.truncated = "the file ends inside a pcapng block"


class PcapBlocks:
    """Classic pcap records, read in large blocks from the file that scapy opened.

    The reader loops over the records of a block itself (``struct.unpack_from`` at each
    record's offset) and hands back the bytes it could not use, a record cut by the block's
    end: ``refill(tail)`` returns that tail followed by the next block, with at least one
    whole record at its start, or b"" once the file is read. So no record is ever copied
    on its own, and memory holds one block.

    Damage is repaired the way scapy's reader does it: a record longer than ``MAX_FRAME``
    is clipped to it; a last record cut by the end of the file is returned as far as it
    goes (``cut_short``); a last record header cut short is dropped (``incomplete_tail``).
    A repaired record is handed on with its header rewritten to the bytes it has.
    """

    def __init__(self, file, endian: str, warnings: list[str]):
        self._file = file
        self.endian = endian
        self.record_header = struct.Struct(endian + "IIII")
        self._warnings = warnings
        self.cut_short: tuple[int, int] | None = None  # (bytes there, bytes announced)
        self.incomplete_tail = 0  # bytes of a record header at the very end

    def refill(self, tail: bytes) -> bytes:
        more = self._read(BLOCK)
        if not more:
            return self._last_record(tail)
        return self._whole_first_record(tail + more if tail else more)

    def _read(self, size: int) -> bytes:
        try:  # read1: what one read gives; read() would lose it all to a cut gzip stream
            return self._file.read1(size)
        except (OSError, EOFError, zlib.error) as err:  # a damaged gzip stream
            self._warnings.append(f"reading stopped: {err}")
            return b""

    def _whole_first_record(self, block: bytes) -> bytes:
        while True:
            if len(block) >= RECORD_HEADER:
                caplen = self.record_header.unpack_from(block)[2]
                if caplen > MAX_FRAME:
                    return self._clipped(block)
                if len(block) >= RECORD_HEADER + caplen:
                    return block
            more = self._read(BLOCK)
            if not more:
                return self._last_record(block)
            block += more

    def _clipped(self, block: bytes) -> bytes:
        """The first record is longer than MAX_FRAME: keep MAX_FRAME bytes, skip the rest."""
        sec, usec, caplen, wirelen = self.record_header.unpack_from(block)
        keep = RECORD_HEADER + MAX_FRAME
        while len(block) < keep and (more := self._read(BLOCK)):
            block += more
        self._warnings.append(f"a frame of {caplen} bytes was clipped to {MAX_FRAME}")
        to_skip = RECORD_HEADER + caplen - len(block)
        while to_skip > 0 and (skipped := self._read(min(to_skip, BLOCK))):
            to_skip -= len(skipped)
        kept = block[RECORD_HEADER:keep]
        if len(kept) < MAX_FRAME or to_skip > 0:
            self.cut_short = (len(kept), caplen)
        rest = block[RECORD_HEADER + caplen:] if to_skip < 0 else b""
        return self.record_header.pack(sec, usec, len(kept), wirelen) + kept + rest

    def _last_record(self, tail: bytes) -> bytes:
        """The end of the file: ``tail`` is less than one whole record."""
        if len(tail) < RECORD_HEADER:
            self.incomplete_tail = len(tail)
            return b""
        sec, usec, caplen, wirelen = self.record_header.unpack_from(tail)
        have = min(len(tail) - RECORD_HEADER, MAX_FRAME)
        self.cut_short = (have, caplen)
        return self.record_header.pack(sec, usec, have, wirelen) + tail[RECORD_HEADER:][:have]


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
