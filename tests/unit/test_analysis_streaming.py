"""Streaming: what the analyser holds stays bounded, and reading in blocks, in frame order,
with roles found early and with bounded percentiles gives the same answers."""

import json
import struct
import sys
import tracemalloc

import pcapsynth as ps
import pytest
from hdrh.histogram import HdrHistogram
from scapy.layers.inet import TCP

from lab.analysis import analyse, capture, order, tally
from lab.analysis.cli import main
from lab.analysis.errors import CaptureError
from lab.analysis.excerpt import copy_first_packets, count_packets
from lab.analysis.pairing import RELEASE_EVERY
from lab.analysis.rotation import FIRST_BREAKS
from lab.analysis.tally import Tally
from lab.analysis.timing import Latencies, hdr_bucket
from lab.analysis.wire import read_http, read_wire

ORDER = ["app1", "app2", "app3"]


class Watched(Tally):
    """A Tally that records the most it ever held, event by event."""

    def __init__(self, path):
        super().__init__(str(path), flow_limit=5)
        self.most = {}

    def started(self, request):
        super().started(request)
        self._measure()

    def done(self, request):
        super().done(request)
        self._measure()

    def _measure(self):
        pairer = self.pairer
        sizes = {
            "open client requests": len(pairer.open_clients),
            "unclaimed upstream requests": len(pairer.waiting),
            "ids": len(pairer.by_id) + len(pairer.retried),
            "in flight (overlap)": len(self.client.overlap.in_flight)
            + len(self.upstream.overlap.in_flight),
            "flow": len(self.flow_clients) + len(self.flow_upstream) + len(self.partners),
            "warm-up": len(self._warmup or ()),
            "successions": len(self.sequence.successions),
            "first places": max((len(p) for p in self.sequence.first_places.values()),
                                default=0),
        }
        for name, size in sizes.items():
            self.most[name] = max(self.most.get(name, 0), size)


@pytest.mark.parametrize("echo_id", [True, False])
def test_what_is_held_is_bounded_by_what_is_in_flight(tmp_path, echo_id):
    width, rounds = 6, 700  # 4200 exchanges, 6 at a time
    path = tmp_path / "long.pcap"
    ps.write_fast_concurrent_capture(path, rounds, width, echo_id=echo_id)
    watched = Watched(path)
    read_wire(path, watched)
    watched.finish()
    most = watched.most
    assert most["open client requests"] <= width
    assert most["unclaimed upstream requests"] <= width + RELEASE_EVERY
    assert most["ids"] <= width + RELEASE_EVERY
    assert most["in flight (overlap)"] <= 2 * width
    assert most["flow"] <= 15
    assert most["warm-up"] <= 2 * tally.WARMUP
    assert most["successions"] <= len(ORDER) ** 2
    assert most["first places"] <= FIRST_BREAKS
    assert watched.client.requests == watched.upstream.requests == width * rounds
    pairing = watched.pairing()
    assert (pairing.paired, pairing.unmatched_client, pairing.unmatched_upstream) == (
        width * rounds, 0, 0)
    assert pairing.method == ("x-request-id" if echo_id else "method+uri+time")


def peak_memory(path) -> int:
    tracemalloc.start()
    try:
        analyse(path, flow_limit=20)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(capture, "BLOCK", 64 * 1024)  # blocks small next to the files
    short, long = tmp_path / "short.pcap", tmp_path / "long.pcap"
    ps.write_fast_concurrent_capture(short, 400, 4, body=b"")  # 1600 exchanges
    ps.write_fast_concurrent_capture(long, 1600, 4, body=b"")  # 6400 exchanges
    assert long.stat().st_size > 3.9 * short.stat().st_size
    # ~1 MB either way (bounded, if not constant: up to 8192 exact response times per
    # backend are kept, 8 bytes each)
    assert peak_memory(long) < 1.1 * peak_memory(short) + 64 * 1024


def test_results_do_not_depend_on_block_size_nor_warm_up(tmp_path, monkeypatch):
    lab = ps.Lab(client_keepalive=True)
    for backends in (["app1", "app2", "app3"], ["app3", "app1", "app2"], ["app2", "app2"]):
        lab.batch(backends, method="POST", body=b"k=v" * 300, pieces=3)
    path = ps.write_pcap(tmp_path / "lab.pcap", lab.wire.packets)
    usual = analyse(path).to_dict()
    monkeypatch.setattr(capture, "BLOCK", 97)  # records straddle almost every block
    monkeypatch.setattr(tally, "WARMUP", 1)  # roles decided on the first request
    assert analyse(path).to_dict() == usual
    assert usual["requests"] == 8 and usual["pairing"]["paired"] == 8


def test_roles_decided_too_early_are_corrected_by_a_second_reading(tmp_path, monkeypatch):
    """A health checker polling two apps first looks like a balancer (it spreads)."""
    wire = ps.Wire()
    checker = "192.168.56.5"
    for app in ("app1", "app2"):
        conn = ps.Tcp(wire, checker, 45000 + int(app[-1]), ps.APPS[app], ps.APP_PORT)
        conn.send(True, ps.http_request("GET", "/health"))
        conn.send(False, ps.http_response(200, app))
    lab = ps.sequential_lab(ps.rotation(6))
    for packet in lab.wire.packets:
        packet.time += 10
    path = ps.write_pcap(tmp_path / "lab.pcap", wire.packets + lab.wire.packets)
    monkeypatch.setattr(tally, "WARMUP", 2)
    readings = []
    original = read_wire

    def counted(*args):
        readings.append(1)
        return original(*args)

    monkeypatch.setattr(sys.modules["lab.analysis.analyse"], "read_wire", counted)
    result = analyse(path)
    assert len(readings) == 2
    assert result.balancer_address == ps.BALANCER
    assert (result.client_requests, result.requests) == (6, 6)  # the checks are neither
    assert result.upstream_counts == {"app1": 2, "app2": 2, "app3": 2}
    assert result.verdict == "pass"


def test_upstream_order_is_the_order_of_first_bytes(tmp_path):
    """A head split over two segments starts before another connection's whole head:
    the analysis sees the second first, and must still put the first first."""
    wire = ps.Wire()
    slow = wire.connect(ps.BALANCER, ps.APPS["app1"], ps.APP_PORT)
    fast = wire.connect(ps.BALANCER, ps.APPS["app2"], ps.APP_PORT)
    head = ps.http_request("GET", "/slow", "a" * 32)
    slow._segment(True, "PA", head[:20])
    fast.send(True, ps.http_request("GET", "/fast", "b" * 32))
    slow._segment(True, "PA", head[20:], seq=slow.seq[True] + 20)
    slow.seq[True] += len(head)
    slow.send(False, ps.http_response(200, "app1"))
    fast.send(False, ps.http_response(200, "app2"))
    requests, _ = read_http(ps.write_pcap(tmp_path / "split.pcap", wire.packets))
    assert [r.uri for r in requests] == ["/slow", "/fast"]
    assert requests[0].first_frame < requests[1].first_frame < requests[0].last_frame


def test_events_wait_at_most_max_waiting_behind_an_unfinished_head(tmp_path, monkeypatch):
    monkeypatch.setattr(order, "MAX_WAITING", 3)
    wire = ps.Wire()
    stuck = wire.connect(ps.BALANCER, ps.APPS["app1"], ps.APP_PORT)
    stuck._segment(True, "PA", b"GET /never-finished HTTP/1.1\r\nHost: x\r\n")
    lab_requests = 0
    for number, app in enumerate(ps.rotation(6)):
        conn = wire.connect(ps.BALANCER, ps.APPS[app], ps.APP_PORT)
        conn.send(True, ps.http_request("GET", f"/{number}", f"{number:032x}"))
        conn.send(False, ps.http_response(200, app))
        lab_requests += 1
    requests, _ = read_http(ps.write_pcap(tmp_path / "stuck.pcap", wire.packets))
    assert [r.uri for r in requests] == [f"/{n}" for n in range(lab_requests)]


def test_breaks_are_all_counted_but_only_the_first_kept(tmp_path):
    backends = ["app1", "app2", "app3"] * 2 + ["app2", "app1"] * 12
    result = analyse(ps.write_pcap(tmp_path / "lab.pcap", ps.sequential_lab(backends).wire.packets),
                     upstream_order=ORDER)
    assert result.break_count > FIRST_BREAKS
    assert len(result.breaks) == FIRST_BREAKS
    assert [b.position for b in result.breaks] == sorted(b.position for b in result.breaks)
    assert result.breaks[0].position == 7
    data = result.to_dict()["round_robin"]
    assert data["breaks"] == result.break_count
    assert len(data["first_breaks"]) == FIRST_BREAKS
    assert f"{result.break_count} break(s)" in result.reasons[0]


def test_retried_request_ids_are_counted(tmp_path):
    wire = ps.Wire()
    front = wire.connect(ps.CLIENT, ps.BALANCER, ps.HTTP_PORT)
    front.send(True, ps.http_request("GET", "/flaky"))
    for app in ("app1", "app2"):  # nginx tries app1, then the next upstream
        conn = wire.connect(ps.BALANCER, ps.APPS[app], ps.APP_PORT)
        conn.send(True, ps.http_request("GET", "/flaky", "f" * 32))
        conn.send(False, ps.http_response(502 if app == "app1" else 200, app))
    front.send(False, ps.http_response(200, request_id="f" * 32))
    result = analyse(ps.write_pcap(tmp_path / "retry.pcap", wire.packets))
    assert (result.paired, result.retries) == (1, 1)
    assert (result.unmatched_client, result.unmatched_upstream) == (0, 0)
    assert any("retried" in warning for warning in result.warnings)


def test_headers_in_any_spelling(tmp_path):
    wire = ps.Wire()
    conn = wire.connect(ps.BALANCER, ps.APPS["app1"], ps.APP_PORT)
    conn.send(True, b"POST /a HTTP/1.1\r\nhost: x\r\nx-request-id-from: no\r\n"
                    b"X-REQUEST-ID :  abc  \r\ncontent-length: 4\r\n\r\nbody")
    conn.send(False, b"HTTP/1.1 200 OK\r\nx-served-by: App1\r\ncontent-length : 3\r\n\r\nabc")
    conn.send(True, b"GET /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nabc\r\n0\r\n\r\n")
    conn.send(False, b"HTTP/1.1 200\r\nX-Served-By: App1\r\nTRANSFER-ENCODING: Chunked\r\n\r\n"
                     b"2\r\nok\r\n0\r\n\r\n")
    conn.send(True, ps.http_request("GET", "/c"))
    conn.send(False, ps.http_response(204, "App1", body=b""))
    requests, stats = read_http(ps.write_pcap(tmp_path / "spelling.pcap", wire.packets))
    assert [(r.uri, r.request_id, r.status, r.served_by) for r in requests] == [
        ("/a", "abc", 200, "App1"), ("/b", None, 200, "App1"), ("/c", None, 204, "App1")]
    assert all(r.response_end_frame for r in requests)
    assert stats.resyncs == 0


def test_response_times_are_exact_while_few_then_within_a_thousandth():
    exact, bounded = Latencies(), Latencies(exact_limit=100)
    samples = [0.25 + (i * 7919 % 5000) / 100 for i in range(5000)]  # 0.25 .. 50.24 ms
    for ms in samples:
        exact.add(ms)
        bounded.add(ms)
    assert len(exact.values) == 5000 and exact.buckets is None
    assert len(bounded.values) == 0
    buckets = len(bounded.buckets)
    for ms in samples * 4:  # more samples of the same range: no more memory
        bounded.add(ms)
    assert len(bounded.buckets) == buckets <= 2048 + 5 * 1024  # µs below 2**16: 2048 + 5 halves
    precise, estimate = exact.summary(), bounded.summary()
    assert estimate.max_ms == precise.max_ms == round(max(samples), 3)
    assert (precise.count, estimate.count) == (5000, 25000)
    assert estimate.p50_ms == pytest.approx(precise.p50_ms, rel=1e-3)
    assert estimate.p90_ms == pytest.approx(precise.p90_ms, rel=1e-3)
    merged = Latencies(exact_limit=100)
    merged.merge(bounded)
    merged.merge(exact)
    assert merged.summary().count == 30000


def test_response_times_past_the_histograms_hour_count_at_its_top():
    bounded = Latencies(exact_limit=1)
    for ms in (5.0, 7_200_000.0, 7_300_000.0):  # two answers two hours late
        bounded.add(ms)
    summary = bounded.summary()
    assert (summary.count, summary.max_ms) == (3, 7_300_000.0)
    # two of three at the histogram's highest value, none lost
    assert summary.p50_ms == summary.p90_ms == pytest.approx(3_600_000, rel=1e-3)


@pytest.mark.parametrize("us", [0, 1, 2047, 2048, 2049, 4097, 51_000, 123_456_789])
def test_hdr_buckets_are_hdrhistograms(us):
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    assert hdr_bucket(us) == histogram.get_lowest_equivalent_value(us)


# -- reading records in blocks -----------------------------------------------------------


def test_frames_longer_than_max_frame_are_clipped_and_the_next_ones_read(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(capture, "MAX_FRAME", 300)
    monkeypatch.setattr(capture, "BLOCK", 128)
    lab = ps.Lab(client_keepalive=True)
    lab.exchange("app1", method="POST", uri="/big", body=b"z" * 2000)
    for backend in ("app2", "app3"):
        lab.exchange(backend)
    path = ps.write_pcap(tmp_path / "big-frames.pcap", lab.wire.packets)
    result = analyse(path)
    assert result.packets == len(lab.wire.packets) and not result.truncated
    assert (result.client_requests, result.requests) == (3, 3)
    assert any("clipped" in warning for warning in result.warnings)


def test_excerpts_of_a_capture(tmp_path):
    packets = ps.sequential_lab(ps.rotation(3)).wire.packets
    source = ps.write_pcap(tmp_path / "lab.pcap", packets, endian=">")
    total = count_packets(source)
    assert total == len(packets) and count_packets(source, stop_at=10) == 10
    assert copy_first_packets(source, tmp_path / "head.pcap", 20) == 20
    assert count_packets(tmp_path / "head.pcap") == 20
    assert (tmp_path / "head.pcap").read_bytes() == source.read_bytes()[:len(
        (tmp_path / "head.pcap").read_bytes())]
    assert copy_first_packets(source, tmp_path / "all.pcap", 10_000) == total
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(source.read_bytes()[:-5])
    assert count_packets(cut) == total - 1
    pcapng = ps.write_pcapng_scapy(tmp_path / "lab.pcapng", [])
    with pytest.raises(CaptureError, match="not a classic pcap"):
        count_packets(pcapng)


def test_excerpt_is_analysed_like_the_start_of_the_capture(tmp_path):
    source = ps.write_pcap(tmp_path / "lab.pcap", ps.sequential_lab(ps.rotation(9)).wire.packets)
    copy_first_packets(source, tmp_path / "head.pcap", 16 * 6)  # 16 frames per exchange
    assert analyse(tmp_path / "head.pcap").requests == 6


def test_cli_writes_the_upstream_list(tmp_path, capsys):
    lab = ps.sequential_lab(ps.rotation(4, start=2))
    path = ps.write_pcap(tmp_path / "lab.pcap", lab.wire.packets)
    listing = tmp_path / "upstream.txt"
    assert main([str(path), "--json", "--upstream-list", str(listing)]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 4
    assert listing.read_text().splitlines() == [
        f"{ps.APPS[app]}\t{ps.APP_PORT}" for app in ps.rotation(4, start=2)]


def test_cli_refuses_an_unwritable_upstream_list(tmp_path, capsys):
    path = ps.write_pcap(tmp_path / "lab.pcap", ps.sequential_lab(["app1"]).wire.packets)
    assert main([str(path), "--upstream-list", str(tmp_path / "no" / "such.txt")]) == 2
    assert "cannot write the upstream list" in capsys.readouterr().err


def test_a_late_end_does_not_make_sequential_traffic_concurrent(tmp_path):
    """A request that never got an answer is in flight up to its own last byte only,
    although its connection (so its end) is closed much later."""
    lab = ps.sequential_lab(ps.rotation(3))
    lost = lab.wire.connect(ps.CLIENT, ps.BALANCER, ps.HTTP_PORT)
    lost.send(True, ps.http_request("GET", "/lost"))
    for backend in ps.rotation(3):
        lab.exchange(backend)
    lost.close()
    result = analyse(ps.write_pcap(tmp_path / "lab.pcap", lab.wire.packets))
    assert (result.traffic, result.client_requests) == ("sequential", 7)
    assert result.statuses["client"] == {"200": 6, "none": 1}


def test_struct_of_record_headers_matches_the_file_byte_order(tmp_path):
    little = ps.write_pcap(tmp_path / "l.pcap", ps.sequential_lab(["app1"]).wire.packets)
    big = ps.write_pcap(tmp_path / "b.pcap", ps.sequential_lab(["app1"]).wire.packets,
                        endian=">")
    for path in (little, big):
        with capture.CaptureFile(str(path)) as opened:
            blocks = opened.blocks()
            block = blocks.refill(b"")
            caplen = blocks.record_header.unpack_from(block)[2]
            assert caplen == struct.unpack_from("!H", block, 16 + 16)[0] + 14
    assert TCP  # scapy built the frames


def test_a_cut_gzip_stream_is_analysed_up_to_the_cut(tmp_path):
    import gzip

    plain = ps.write_pcap(tmp_path / "lab.pcap", ps.sequential_lab(ps.rotation(6)).wire.packets)
    packed = tmp_path / "lab.pcap.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes())[:-40])  # gzip killed mid-write
    result = analyse(packed)
    assert result.requests == 6 and result.truncated
    assert any("reading stopped" in warning for warning in result.warnings)
