"""TCP reassembly and HTTP/1.1 parsing: splits, retransmissions, keep-alive, bodies."""

from collections import Counter

import pcapsynth as ps
from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Raw

from lab.analysis import analyse
from lab.analysis.wire import read_http


def write(tmp_path, packets, name="lab.pcap"):
    return ps.write_pcap(tmp_path / name, packets)


def client_side(requests):
    return [r for r in requests if r.server == ps.BALANCER]


def test_request_split_across_segments_is_reassembled(tmp_path):
    lab = ps.Lab(client_keepalive=True)
    body = b"name=lab&" * 300
    lab.exchange("app1", method="POST", uri="/cart/add", body=body, pieces=9)
    lab.exchange("app2", method="GET", uri="/after", pieces=3)
    requests, _ = read_http(write(tmp_path, lab.wire.packets))
    post, get = client_side(requests)
    assert (post.method, post.uri, get.method, get.uri) == ("POST", "/cart/add", "GET", "/after")
    assert post.last_frame > post.first_frame  # the body ends segments after the head began
    assert (post.position, get.position) == (1, 2)  # one kept-alive client connection
    assert (post.status, get.status) == (200, 200)


def test_retransmitted_segments_are_counted_once(tmp_path):
    lab = ps.Lab()
    for backend in ps.rotation(6):
        lab.exchange(backend, pieces=2, retransmit=True)
    result = analyse(write(tmp_path, lab.wire.packets))
    assert result.retransmissions == 6
    assert (result.client_requests, result.requests) == (6, 6)
    assert result.verdict == "pass"


def test_out_of_order_segments_are_put_back_in_order(tmp_path):
    lab = ps.Lab(client_keepalive=True)
    for number, backend in enumerate(ps.rotation(3)):
        lab.exchange(backend, uri=f"/page/{number}", pieces=3, reorder=True)
    requests, _ = read_http(write(tmp_path, lab.wire.packets))
    assert [r.uri for r in client_side(requests)] == ["/page/0", "/page/1", "/page/2"]


def test_segment_missing_from_the_capture_loses_one_request_only(tmp_path):
    lab = ps.Lab(client_keepalive=True)
    for number, backend in enumerate(ps.rotation(4)):
        lab.exchange(backend, uri=f"/page/{number}", pieces=3, lose=number == 1)
    result = analyse(write(tmp_path, lab.wire.packets))
    requests, stats = read_http(tmp_path / "lab.pcap")
    assert [r.uri for r in client_side(requests)] == ["/page/0", "/page/2", "/page/3"]
    assert stats.bytes_not_captured > 0
    assert any("not in the capture" in warning for warning in result.warnings)
    assert result.requests == 4 and result.unmatched_upstream == 1


def test_keep_alive_connections_carry_several_requests(tmp_path):
    lab = ps.sequential_lab(ps.rotation(9), client_keepalive=True)
    requests, stats = read_http(write(tmp_path, lab.wire.packets))
    by_connection = Counter(r.connection for r in requests)
    assert stats.connections == 4  # one client connection, one per app
    assert sorted(by_connection.values()) == [3, 3, 3, 9]
    upstream = [r for r in requests if r.client == ps.BALANCER]
    assert sorted({r.position for r in upstream}) == [1, 2, 3]
    assert all(r.status == 200 and r.response_end_frame for r in requests)


def test_chunked_responses_keep_the_connection_in_step(tmp_path):
    lab = ps.Lab(client_keepalive=True)
    for backend in ps.rotation(6):
        lab.batch([backend], chunked=True)
    requests, stats = read_http(write(tmp_path, lab.wire.packets))
    assert len(requests) == 12
    assert all(r.status == 200 and r.response_end_frame for r in requests)
    assert stats.resyncs == 0


def test_request_bodies_that_look_like_http_are_skipped(tmp_path):
    lab = ps.Lab(client_keepalive=True)
    lab.exchange("app1", method="POST", uri="/upload",
                 body=b"GET /not-a-request HTTP/1.1\r\nHost: x\r\n\r\n", pieces=2)
    lab.exchange("app2", uri="/real")
    requests, _ = read_http(write(tmp_path, lab.wire.packets))
    assert [r.uri for r in client_side(requests)] == ["/upload", "/real"]


def test_repeated_request_heads_keep_their_bodies(tmp_path):
    """The parser remembers the last header lines that announced no body; a repeated head
    with a body is looked at again, so its body is skipped each time."""
    lab = ps.Lab(client_keepalive=True)
    disguised = b"GET /not-a-request HTTP/1.1\r\nHost: x\r\n\r\n"
    lab.exchange("app1", uri="/a")
    lab.exchange("app2", uri="/b")  # the same header lines as /a's
    lab.exchange("app3", method="POST", uri="/c", body=disguised)
    lab.exchange("app1", method="POST", uri="/d", body=disguised)  # /c's lines again
    lab.exchange("app2", uri="/e")
    requests, stats = read_http(write(tmp_path, lab.wire.packets))
    assert [r.uri for r in client_side(requests)] == ["/a", "/b", "/c", "/d", "/e"]
    assert stats.resyncs == 0


def test_response_to_head_has_no_body(tmp_path):
    wire = ps.Wire()
    conn = wire.connect(ps.CLIENT, ps.APPS["app1"], ps.APP_PORT)
    conn.send(True, ps.http_request("HEAD", "/big"))
    conn.send(False, ps.http_response(200, "app1", b"x" * 500)[:-500])  # head only
    conn.send(True, ps.http_request("GET", "/next"))
    conn.send(False, ps.http_response(404, "app1"))
    requests, stats = read_http(write(tmp_path, wire.packets))
    assert [(r.method, r.uri, r.status) for r in requests] == [
        ("HEAD", "/big", 200), ("GET", "/next", 404)]
    assert stats.resyncs == 0


def test_non_http_traffic_is_ignored(tmp_path):
    lab = ps.sequential_lab(ps.rotation(3))
    db = lab.wire.connect(ps.APPS["app1"], "192.168.56.20", 5432)
    db.send(True, b"\x00\x00\x00\x08\x04\xd2\x16\x2f" * 20)
    db.send(False, b"N" + bytes(range(256)))
    lab.wire.add(IP(src=ps.CLIENT, dst=ps.BALANCER) / UDP(sport=5353, dport=53) / Raw(b"q"))
    result = analyse(write(tmp_path, lab.wire.packets))
    assert (result.client_requests, result.requests) == (3, 3)
    assert result.upstream_counts == {"app1": 1, "app2": 1, "app3": 1}


def test_capture_started_mid_connection_finds_the_next_request(tmp_path):
    lab = ps.Lab(client_keepalive=True)
    lab.exchange("app1", method="POST", uri="/first", body=b"z" * 4000, pieces=4)
    start = len(lab.wire.packets) - 10  # inside the first exchange's upstream traffic
    for backend in ["app2", "app3", "app1"]:
        lab.exchange(backend, uri=f"/{backend}")
    joined_late = lab.wire.packets[start:]
    requests, _ = read_http(write(tmp_path, joined_late))
    assert [r.uri for r in client_side(requests)] == ["/app2", "/app3", "/app1"]


def test_port_reuse_starts_a_new_connection(tmp_path):
    wire = ps.Wire()
    for uri in ("/one", "/two"):
        conn = ps.Tcp(wire, ps.CLIENT, 41000, ps.APPS["app1"], ps.APP_PORT)
        conn.seq = {True: 90000 if uri == "/two" else 1000, False: 7000}
        conn.send(True, ps.http_request("GET", uri))
        conn.send(False, ps.http_response(200, "app1"))
    requests, stats = read_http(write(tmp_path, wire.packets))
    assert [r.uri for r in requests] == ["/one", "/two"]
    assert stats.connections == 2


def test_hole_is_skipped_as_soon_as_the_peer_acknowledges_past_it(tmp_path):
    """Not at the end of the capture: the next response must pair with its request."""
    lab = ps.Lab(client_keepalive=True)
    lab.exchange("app1", uri="/a", pieces=3, lose=True)
    lab.exchange("app2", uri="/b")
    packets = [p for p in lab.wire.packets if not (p.haslayer(TCP) and p[TCP].flags == "FA")]
    requests, _ = read_http(write(tmp_path, packets))
    b_request = next(r for r in client_side(requests) if r.uri == "/b")
    assert b_request.status == 200  # its response was matched in step, not after a flush


def test_duplicate_of_a_segment_waiting_behind_a_hole_is_counted_once(tmp_path):
    lab = ps.Lab(client_keepalive=True)
    lab.exchange("app1", uri="/late-start", pieces=3, reorder=True)  # sends 2, 3, then 1
    first_data = next(i for i, p in enumerate(lab.wire.packets)
                      if p.haslayer(Raw) and b"/late" not in bytes(p[Raw].load)
                      and p[IP].dst == ps.BALANCER)
    lab.wire.packets.insert(first_data + 2, lab.wire.packets[first_data].copy())
    result = analyse(write(tmp_path, lab.wire.packets))
    assert result.retransmissions == 1
    assert result.client_requests == 1
