"""The classic pcap hot loop (``dissect.follow_pcap``) reads the usual Ethernet/IPv4/TCP
frame with one ``unpack_from`` of combined fields; every other frame goes to the general
``Dissector``. Each case is read both ways (pcap: the hot loop; pcapng: the general path
only) and must give the same requests and counts."""

import pcapsynth as ps
import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.packet import Raw

from lab.analysis import dissect
from lab.analysis.wire import read_http


def lab_packets():
    return ps.sequential_lab(ps.rotation(6, start=1)).wire.packets


def rebuilt(packet, **ip_fields):
    """``packet`` with IP fields changed, lengths and checksums computed anew."""
    ip = packet[IP].copy()
    for name, value in ip_fields.items():
        setattr(ip, name, value)
    del ip.len, ip.chksum, ip.ihl
    ip[TCP].chksum = None
    result = IP(bytes(ip))
    result.time = packet.time
    return result


def with_tcp_options(packet):
    ip = packet[IP].copy()
    ip[TCP].options = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
    del ip.len, ip.chksum, ip[TCP].dataofs, ip[TCP].chksum
    result = IP(bytes(ip))
    result.time = packet.time
    return result


def both_ways(tmp_path, packets):
    """(requests, stats) as read by the hot loop and by the general path."""
    pcap = read_http(ps.write_pcap(tmp_path / "x.pcap", packets))
    pcapng = read_http(ps.write_pcapng_scapy(tmp_path / "x.pcapng", packets))
    return pcap, pcapng


def summary(requests):
    return [(r.method, r.uri, r.client, r.server, r.server_port, r.client_port, r.status,
             r.first_frame, r.last_frame, r.response_frame, r.response_end_frame,
             r.connection, r.position) for r in requests]


def counts(stats):
    d = stats.dissect
    return (stats.packets, stats.tcp_segments, d.not_ip, d.not_tcp, d.ip_fragments,
            d.too_short, d.cut_by_snaplen, stats.connections, stats.retransmissions)


def assert_same(tmp_path, packets, requests=12):
    (fast, fast_stats), (general, general_stats) = both_ways(tmp_path, packets)
    assert len(fast) == requests
    assert summary(fast) == summary(general)
    assert counts(fast_stats) == counts(general_stats)
    return fast_stats


@pytest.mark.parametrize("fields", [
    {},
    {"tos": 0xB8},  # DSCP EF: the TOS byte is left out of the combined test
    {"flags": "DF"},  # don't fragment is not a fragment
    {"ttl": 1},
])
def test_usual_frames_take_the_hot_loop(tmp_path, monkeypatch, fields):
    general = []
    original = dissect.Dissector.frame
    monkeypatch.setattr(dissect.Dissector, "frame",
                        lambda self, *args: general.append(args) or original(self, *args))
    packets = [rebuilt(p, **fields) for p in lab_packets()]
    assert_same(tmp_path, packets)
    general_pcap = len(general) - len(packets)  # the pcapng reading sends all of them
    assert general_pcap == 0


def test_tcp_options_move_the_payload(tmp_path):
    assert_same(tmp_path, [with_tcp_options(p) for p in lab_packets()])


def test_ip_options_go_to_the_general_path(tmp_path, monkeypatch):
    general = []
    original = dissect.Dissector.frame
    monkeypatch.setattr(dissect.Dissector, "frame",
                        lambda self, *args: general.append(args) or original(self, *args))
    packets = [rebuilt(p, options=[b"\x01\x01\x01\x00"]) for p in lab_packets()]  # NOPs
    assert packets[0][IP].ihl == 6
    assert_same(tmp_path, packets)
    assert len(general) == 2 * len(packets)  # from the pcap and the pcapng reading


def test_fragments_and_other_protocols_are_counted_not_followed(tmp_path):
    packets = lab_packets()
    extra = [IP(src=ps.CLIENT, dst=ps.BALANCER) / UDP(sport=53, dport=53) / Raw(b"dns"),
             *fragment(IP(src=ps.CLIENT, dst=ps.BALANCER) / TCP(sport=1, dport=80)
                       / Raw(b"x" * 120), fragsize=64)]
    for packet in extra:
        packet.time = packets[3].time
    mixed = packets[:3] + extra + packets[3:]
    stats = assert_same(tmp_path, mixed)
    assert stats.dissect.not_tcp == 1
    assert stats.dissect.ip_fragments == len(extra) - 1 >= 2


def test_a_bogus_ip_length_is_too_short_both_ways(tmp_path):
    packets = lab_packets()
    bad = rebuilt(packets[-1])
    bad.len = 30  # shorter than the IP and TCP headers
    bad = IP(bytes(bad))
    bad.time = packets[-1].time
    stats = assert_same(tmp_path, packets[:-1] + [bad])
    assert stats.dissect.too_short == 1


def test_each_direction_parses_heads_by_its_role(tmp_path):
    """The role (requests or responses) is decided by the first message; a direction whose
    first head is not HTTP is dropped; one joined mid-stream searches for a message."""
    wire = ps.Wire()
    conn = wire.connect(ps.BALANCER, ps.APPS["app1"], ps.APP_PORT)
    for number in range(3):
        conn.send(True, ps.http_request("GET", f"/{number}", f"{number:032x}"))
        conn.send(False, ps.http_response(200 + number, "app1"))
    junk = wire.connect(ps.BALANCER, ps.APPS["app2"], ps.APP_PORT)
    junk.send(True, b"HELLO THERE\r\n\r\n" + ps.http_request("GET", "/never"))
    joined = ps.Tcp(ps.Wire(), ps.BALANCER, 41000, ps.APPS["app3"], ps.APP_PORT)
    joined.wire = wire  # its handshake is not in the capture
    joined.send(True, b"y" * 30 + ps.http_request("GET", "/joined", "j" * 32))
    joined.send(False, ps.http_response(200, "app3"))
    requests, stats = read_http(ps.write_pcap(tmp_path / "x.pcap", wire.packets))
    assert [(r.uri, r.status, r.connection, r.position, r.client_port) for r in requests] \
        == [("/0", 200, 1, 1, 40000), ("/1", 201, 1, 2, 40000), ("/2", 202, 1, 3, 40000),
            ("/joined", 200, 3, 1, 41000)]
    assert requests[0].served_by == "app1" and requests[0].request_id == "0" * 32
    assert stats.orphan_responses == 0


def test_sequence_numbers_wrapping_mid_connection(tmp_path):
    """Both directions of a keep-alive connection wrap past 2**32 - 1 between messages and
    inside one: every request and response is still read once, in order."""
    wire = ps.Wire()
    request, response = ps.http_request("GET", "/w"), ps.http_response(200, body=b"x" * 300)
    conn = ps.Tcp(wire, ps.CLIENT, 40000, ps.BALANCER, ps.HTTP_PORT,
                  isn=(2**32 - 2 * len(request) - 8, 2**32 - len(response) - 151))
    for _ in range(4):
        conn.send(True, request)
        conn.send(False, response, pieces=2)
    conn.close()
    stats = assert_same(tmp_path, wire.packets, requests=4)
    assert stats.retransmissions == 0
    (requests, _), _ = both_ways(tmp_path, wire.packets)
    assert [(r.status, r.position) for r in requests] == [(200, n) for n in range(1, 5)]


def test_the_compiled_walker_is_built_and_chosen():
    import subprocess
    import sys

    chosen = subprocess.run(
        [sys.executable, "-c", "from lab.analysis import dissect; "
         "print(dissect.walk_block.__module__)"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert chosen == "lab.analysis._walk", "the compiled walker is not built: make install"
