"""File formats and link layers: pcap/pcapng, both byte orders, SLL/SLL2/raw IP, IPv6."""

import pcapsynth as ps
import pytest

from lab.analysis import analyse


def lab_packets(**options):
    return ps.sequential_lab(ps.rotation(6, start=1), **options).wire.packets


def assert_lab_result(result, link_type: str):
    assert result.link_types == [link_type]
    assert (result.client_requests, result.requests) == (6, 6)
    assert result.upstream_counts == {"app2": 2, "app3": 2, "app1": 2}
    assert result.verdict == "pass"


@pytest.mark.parametrize(("link", "name"), [
    ("ethernet", "Ethernet (1)"),
    ("vlan", "Ethernet (1)"),
    ("sll", "Linux cooked (SLL) (113)"),
    ("sll2", "Linux cooked v2 (SLL2) (276)"),
    ("raw", "raw IP (101)"),
    ("raw12", "raw IP (12)"),
])
def test_link_types(tmp_path, link, name):
    path = ps.write_pcap(tmp_path / f"{link}.pcap", lab_packets(), link=link)
    assert_lab_result(analyse(path), name)


@pytest.mark.parametrize("link", ["ethernet", "sll2", "raw"])
def test_ipv6(tmp_path, link):
    path = ps.write_pcap(tmp_path / "v6.pcap", lab_packets(ipv6=True), link=link)
    result = analyse(path)
    assert result.balancer_address == ps.V6[ps.BALANCER]
    assert (result.client_requests, result.requests) == (6, 6)
    assert result.verdict == "pass"


def test_ipv6_extension_headers_are_skipped(tmp_path):
    packets = [ps.with_hop_by_hop(p) for p in lab_packets(ipv6=True)]
    for original, extended in zip(lab_packets(ipv6=True), packets, strict=True):
        extended.time = original.time
    result = analyse(ps.write_pcap(tmp_path / "hbh.pcap", packets))
    assert (result.client_requests, result.requests) == (6, 6)


def test_ipv6_backends_are_shown_with_brackets_without_names(tmp_path):
    lab = ps.sequential_lab(ps.rotation(3), ipv6=True)
    for packet in lab.wire.packets:  # hide X-Served-By so the address is all there is
        if packet.haslayer("Raw"):
            packet["Raw"].load = packet["Raw"].load.replace(b"X-Served-By", b"X-Other-Hdr")
    result = analyse(ps.write_pcap(tmp_path / "v6.pcap", lab.wire.packets))
    assert "[fd00:56::11]:8000" in result.upstream_counts


def test_pcap_big_endian_and_nanoseconds(tmp_path):
    big = ps.write_pcap(tmp_path / "big.pcap", lab_packets(), endian=">")
    nano = ps.write_pcap(tmp_path / "nano.pcap", lab_packets(), nano=True)
    assert big.read_bytes()[:4] == b"\xa1\xb2\xc3\xd4"
    assert nano.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"
    assert_lab_result(analyse(big), "Ethernet (1)")
    result = analyse(nano)
    assert_lab_result(result, "Ethernet (1)")
    assert result.response_times["app1"].p50_ms == pytest.approx(1.0)


def test_pcapng_from_scapy(tmp_path):
    path = ps.write_pcapng_scapy(tmp_path / "lab.pcapng", lab_packets())
    result = analyse(path)
    assert result.capture_format == "pcapng"
    assert_lab_result(result, "Ethernet (1)")


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcapng_both_byte_orders_with_nanosecond_stamps(tmp_path, endian):
    path = ps.write_pcapng_by_hand(tmp_path / "lab.pcapng", lab_packets(), "sll2", endian)
    result = analyse(path)
    assert result.capture_format == "pcapng"
    assert_lab_result(result, "Linux cooked v2 (SLL2) (276)")
    assert result.response_times["app2"].max_ms == pytest.approx(1.0)
    assert not result.truncated


def test_gzip_compressed_capture(tmp_path):
    import gzip

    plain = ps.write_pcap(tmp_path / "lab.pcap", lab_packets())
    packed = tmp_path / "lab.pcap.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    result = analyse(packed)
    assert result.capture_format == "pcap (gzip)"
    assert_lab_result(result, "Ethernet (1)")


def test_snapshot_length_cuts_bodies_but_not_heads(tmp_path):
    lab = ps.Lab(client_keepalive=True)
    for backend in ps.rotation(6):
        lab.exchange(backend, method="POST", uri="/form", body=b"q" * 600)
    path = ps.write_pcap(tmp_path / "snap.pcap", lab.wire.packets, snaplen=300)
    result = analyse(path)
    assert (result.client_requests, result.requests) == (6, 6)
    assert result.verdict == "pass"
    assert any("snapshot length" in warning for warning in result.warnings)
