"""Pure logic of the traffic tools: the stale-read checker, workloads, the HTTP parser."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from lab.traffic import consistency, http, workloads
from lab.traffic.consistency import Operation


def write(at, version, product=1, took=0.001):
    return Operation(at, at + took, "write", product, version)


def read(at, version, product=1, took=0.001):
    return Operation(at, at + took, "read", product, version)


def test_a_read_after_an_acknowledged_write_must_see_it():
    report = consistency.check([write(1.0, 2), read(2.0, 1)])
    assert report.stale == 1
    assert report.examples[0] == {"product": 1, "read_version": 1, "acknowledged_version": 2,
                                  "acknowledged_before_read_ms": 999.0}


def test_newer_or_equal_versions_are_fine():
    report = consistency.check([write(1.0, 2), read(2.0, 2), read(2.1, 3), write(3.0, 3)])
    assert (report.stale, report.reads, report.writes) == (0, 2, 2)


def test_a_read_overlapping_the_write_may_see_the_old_version():
    # The read began before the write was acknowledged: either version is correct.
    report = consistency.check([write(1.0, 2, took=0.5), read(1.2, 1)])
    assert report.stale == 0


def test_the_newest_acknowledged_version_counts_not_the_last_acknowledged():
    # Two writes acknowledged out of order: version 3 first, then version 2.
    ops = [write(1.0, 3, took=0.1), write(1.0, 2, took=0.2), read(2.0, 2)]
    assert consistency.check(ops).stale == 1


def test_products_are_judged_separately():
    report = consistency.check([write(1.0, 5, product=1), read(2.0, 1, product=2)])
    assert report.stale == 0


def test_records_from_the_generator_become_operations():
    records = [
        (1.0, 1.1, "POST", 7, 200, None, '{"id": 7, "version": 4}'),
        (2.0, 2.1, "GET", 7, 200, "3", ""),
        (2.0, 2.1, "GET", 7, 502, None, ""),
    ]
    report = consistency.check_records(records)
    assert (report.writes, report.reads, report.stale, report.unreadable) == (1, 1, 1, 1)


def test_zipf_prefers_the_first_ranks():
    zipf = workloads.Zipf(1000)
    rng = random.Random(3)
    counts = Counter(zipf.draw(rng) for _ in range(20000))
    assert min(counts) >= 1 and max(counts) <= 1000
    assert counts[1] > counts[2] > counts[10] > counts.get(500, 0)
    assert counts[1] / 20000 == pytest.approx(1 / sum(1 / k ** 1.1 for k in range(1, 1001)),
                                              rel=0.1)


def test_the_mixed_workload_writes_about_a_tenth_of_the_time():
    mixed = workloads.make("mixed", products=1000, categories=20)
    rng = random.Random(5)
    requests = [mixed.next(rng) for _ in range(5000)]
    writes = [r for r in requests if r.method == "POST"]
    assert 0.08 < len(writes) / len(requests) < 0.12
    assert all(r.path == f"/products/{r.key}/update" and r.body.startswith(b"stock=")
               for r in writes)
    assert max(r.key for r in requests) <= workloads.Mixed.hot


def test_an_unknown_workload_is_one_clear_line():
    with pytest.raises(Exception, match="--workload 'nope': choose one of product"):
        workloads.make("nope", 10, 2)


def test_a_response_is_parsed_only_once_complete():
    raw = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Served-By: app2\r\n"
           b"X-Cache: HIT\r\n\r\nhello")
    for cut in (10, len(raw) - 1):
        assert http.parse_response(bytearray(raw[:cut])) is None
    response, used, keep_alive = http.parse_response(bytearray(raw + b"HTTP/1.1 ..."))
    assert (response.status, response.body, used, keep_alive) == (200, b"hello", len(raw), True)
    assert response.header(b"x-served-by") == "app2"
    assert response.header(b"x-cache") == "HIT"
    assert response.header(b"x-product-version") is None


def test_chunked_responses_and_connection_close():
    raw = (b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n")
    assert http.parse_response(bytearray(raw[:-2])) is None
    response, used, keep_alive = http.parse_response(bytearray(raw))
    assert (response.status, response.body, used, keep_alive) == (404, b"abcde", len(raw), False)


def test_requests_carry_a_length_only_with_a_body():
    get = http.request_bytes("GET", "h", "/p/")
    assert get == b"GET /p/ HTTP/1.1\r\nHost: h\r\nUser-Agent: lab-loadtest\r\n\r\n"
    post = http.request_bytes("POST", "h", "/u", b"a=1")
    assert post.endswith(b"Content-Length: 3\r\n\r\na=1")
