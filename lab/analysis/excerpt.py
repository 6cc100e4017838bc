"""The first packets of a classic pcap file, as a smaller pcap file, and a quick count of
records (for benchmarks). Records are copied byte for byte after the file header, or
skipped over by their length: a few lines of ``struct``.
"""

from __future__ import annotations

import os
import struct

from lab.analysis.capture import PCAP_HEADER_SIZE, PCAP_MAGICS, RECORD_HEADER
from lab.analysis.errors import CaptureError

BIG_ENDIAN_MAGICS = (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")


def _open_classic(path: str | os.PathLike):
    """The open file, its header and the struct of its record headers."""
    file = open(path, "rb")  # noqa: SIM115 - the caller closes it
    header = file.read(PCAP_HEADER_SIZE)
    if header[:4] not in PCAP_MAGICS or len(header) < PCAP_HEADER_SIZE:
        file.close()
        raise CaptureError(f"{path} is not a classic pcap file (pcapng and gzip are not "
                           "cut): convert it with editcap -F pcap")
    record_header = struct.Struct(">IIII" if header[:4] in BIG_ENDIAN_MAGICS else "<IIII")
    return file, header, record_header


def count_packets(path: str | os.PathLike, stop_at: int | None = None) -> int:
    """Whole records in a classic pcap file (counting stops at ``stop_at``)."""
    file, _, record_header = _open_classic(path)
    with file:
        size = os.fstat(file.fileno()).st_size
        count, at = 0, PCAP_HEADER_SIZE
        while stop_at is None or count < stop_at:
            head = file.read(RECORD_HEADER)
            if len(head) < RECORD_HEADER:
                break
            at += RECORD_HEADER + record_header.unpack(head)[2]
            if at > size:
                break
            file.seek(at)
            count += 1
    return count


def copy_first_packets(source: str | os.PathLike, target: str | os.PathLike,
                       count: int) -> int:
    """Write the first ``count`` packets of ``source`` to ``target``; return how many
    were written (fewer if ``source`` has fewer whole records)."""
    src, header, record_header = _open_classic(source)
    with src, open(target, "wb") as dst:
        dst.write(header)
        written = 0
        while written < count:
            record = src.read(RECORD_HEADER)
            if len(record) < RECORD_HEADER:
                break
            caplen = record_header.unpack(record)[2]
            data = src.read(caplen)
            if len(data) < caplen:
                break
            dst.write(record + data)
            written += 1
    return written
