# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""``dissect.walk_block_python`` compiled: the same walk over a block of classic pcap
records, step for step, with the record and frame fields read as C integers and each
head's end found by memmem.

Its Python twin is the reference (and what runs where this was not built); the tests run
both on every synthetic capture and require the same requests and counts. Built by
``make install`` (provision/host.sh: cython, then gcc); change both or neither.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

from lab.analysis.http import HEAD, MAX_HEAD


cdef extern from "string.h":
    const void *memmem(const void *haystack, size_t haystacklen,
                       const void *needle, size_t needlelen) nogil


cdef inline unsigned int be32(const unsigned char *p) noexcept nogil:
    return (<unsigned int>p[0] << 24) | (<unsigned int>p[1] << 16) | (<unsigned int>p[2] << 8) | p[3]


cdef inline unsigned int le32(const unsigned char *p) noexcept nogil:
    return (<unsigned int>p[3] << 24) | (<unsigned int>p[2] << 16) | (<unsigned int>p[1] << 8) | p[0]


cdef inline unsigned int be16(const unsigned char *p) noexcept nogil:
    return (<unsigned int>p[0] << 8) | p[1]


cdef enum:
    RECORD_HEADER = 16
    SYN_FIN_RST = 0x07


def walk_block(bytes block, walk):
    """See ``dissect.walk_block_python``."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(block)
    cdef const unsigned char *f
    cdef const void *found
    cdef Py_ssize_t size = PyBytes_GET_SIZE(block)
    cdef Py_ssize_t at = 0, last = size - RECORD_HEADER
    cdef Py_ssize_t data, end, start, stop, head_end
    cdef Py_ssize_t usual_min = walk.usual_min
    cdef Py_ssize_t max_head = MAX_HEAD
    cdef unsigned int sec, usec, caplen, seq
    cdef unsigned char flags
    cdef unsigned long long next_seq
    cdef long long frame = walk.frame, unusual = walk.unusual
    cdef bint little = walk.endian == "<"
    cdef double unit = walk.unit
    cdef double ts
    cdef object tracker = walk.tracker
    cdef object general = walk.dissector.frame
    cdef object link_type = walk.link_type
    cdef object follow = tracker.segment
    cdef dict directions = tracker.directions
    cdef object head_state = HEAD
    cdef object direction, expected, parser, key, after
    cdef bint holding = tracker.holding  # changes only inside follow() and general()
    try:
        while at <= last:
            if little:
                sec, usec, caplen = le32(p + at), le32(p + at + 4), le32(p + at + 8)
            else:
                sec, usec, caplen = be32(p + at), be32(p + at + 4), be32(p + at + 8)
            data = at + RECORD_HEADER
            end = data + caplen
            if end > size:
                break
            at = end
            frame += 1
            if caplen >= usual_min:
                f = p + data
                start = data + 34 + (f[46] >> 4) * 4
                stop = data + 14 + be16(f + 16)  # (an IP length of 0, from TSO, fails below)
                # untagged IPv4 without options, not a fragment, TCP
                if (f[12] == 0x08 and f[13] == 0x00 and f[14] == 0x45
                        and be16(f + 20) & 0x3FFF == 0 and f[23] == 6
                        and start <= stop <= end):
                    flags = f[47]
                    seq = be32(f + 38)
                    key = PyBytes_FromStringAndSize(<const char *>f + 26, 12)
                    if not flags & SYN_FIN_RST and not holding:
                        if start == stop:
                            continue  # a bare ACK, and no hole waits for one
                        direction = directions.get(key)
                        if direction is not None:
                            expected = direction.next_seq
                            if expected is not None:
                                next_seq = expected
                                parser = direction.parser
                                if next_seq == seq and parser is not None:
                                    direction.next_seq = seq + (stop - start)
                                    ts = sec + usec * unit
                                    # In order: straight to HTTP (see the Python twin).
                                    if parser.state == head_state and not parser.buf:
                                        found = memmem(p + start, stop - start, b"\r\n\r\n", 4)
                                        if found != NULL:
                                            head_end = <const unsigned char *>found - p
                                            if head_end - start <= max_head:
                                                after = parser.parse_head(
                                                    parser, block, start, head_end, stop, ts,
                                                    frame, frame, ts)
                                                if after == stop:
                                                    continue
                                                if after >= 0:
                                                    start = after
                                    parser.feed(block, ts, frame, start, stop)
                                    continue
                    follow(frame, sec + usec * unit, key, seq, be32(f + 42), flags,
                           block[start:stop], 0)
                    holding = tracker.holding
                    continue
            unusual += 1
            general(frame, sec + usec * unit, link_type, block[data:end])
            holding = tracker.holding
    finally:
        walk.frame, walk.unusual = frame, unusual
    return at
