"""Bad input: one CaptureError with one line; a truncated tail is a warning, not an error."""

import struct

import pcapsynth as ps
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.packet import Raw

from lab.analysis import CaptureError, analyse
from lab.errors import LabError


def lab_capture(tmp_path, name="lab.pcap"):
    return ps.write_pcap(tmp_path / name, ps.sequential_lab(ps.rotation(6)).wire.packets)


def refused(path, match: str) -> str:
    with pytest.raises(CaptureError, match=match) as caught:
        analyse(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_capture_error_is_a_lab_error():
    assert issubclass(CaptureError, LabError)


def test_missing_file(tmp_path):
    refused(tmp_path / "nope.pcap", "does not exist")


def test_directory(tmp_path):
    refused(tmp_path, "is a directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    assert "--immediate-mode" in refused(path, "is empty")


def test_not_a_capture(tmp_path):
    path = tmp_path / "notes.pcap"
    path.write_text("GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
    refused(path, "not a pcap or pcapng capture .*47 45 54 20")


def test_truncated_in_the_pcap_header(tmp_path):
    path = lab_capture(tmp_path)
    path.write_bytes(path.read_bytes()[:10])
    refused(path, r"truncated inside its pcap header \(10 of 24 bytes\)")


def test_truncated_in_the_pcapng_section_header(tmp_path):
    path = ps.write_pcapng_scapy(tmp_path / "lab.pcapng", ps.sequential_lab(["app1"]).wire.packets)
    path.write_bytes(path.read_bytes()[:20])
    refused(path, "truncated inside its pcapng section header")


def test_header_only_holds_no_packets(tmp_path):
    path = lab_capture(tmp_path)
    path.write_bytes(path.read_bytes()[:24])
    refused(path, "holds no packets")


def test_truncated_last_packet_is_analysed_with_a_warning(tmp_path):
    path = lab_capture(tmp_path)
    whole = analyse(path)
    path.write_bytes(path.read_bytes()[:-30])  # tcpdump killed in the middle of a frame
    result = analyse(path)
    assert result.truncated.startswith(f"frame {whole.packets} is cut short")
    assert any("truncated" in warning for warning in result.warnings)
    assert result.packets == whole.packets
    assert result.requests == 6


def test_truncated_record_header_is_analysed_with_a_warning(tmp_path):
    path = lab_capture(tmp_path)
    path.write_bytes(path.read_bytes() + b"\x01\x02\x03\x04\x05\x06\x07\x08")
    result = analyse(path)
    assert result.truncated == "the last 8 bytes are an incomplete record"
    assert result.requests == 6


@pytest.mark.parametrize("cut", [3, 30])
def test_truncated_pcapng_block_is_analysed_with_a_warning(tmp_path, cut):
    path = ps.write_pcapng_by_hand(tmp_path / "lab.pcapng",
                                   ps.sequential_lab(ps.rotation(6)).wire.packets)
    path.write_bytes(path.read_bytes()[:-cut])
    result = analyse(path)
    assert result.truncated == "the file ends inside a pcapng block"
    assert result.requests == 6


def test_clean_pcapng_is_not_reported_truncated(tmp_path):
    path = ps.write_pcapng_by_hand(tmp_path / "lab.pcapng",
                                   ps.sequential_lab(ps.rotation(3)).wire.packets)
    assert analyse(path).truncated == ""


def test_no_http_in_the_capture(tmp_path):
    wire = ps.Wire()
    db = wire.connect(ps.APPS["app1"], "192.168.56.20", 5432)
    db.send(True, b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
    wire.add(IP(src=ps.CLIENT, dst=ps.BALANCER) / UDP(sport=5353, dport=53) / Raw(b"q"))
    path = ps.write_pcap(tmp_path / "db.pcap", wire.packets)
    refused(path, r"no HTTP/1.x requests in capture .* \(6 packets, 5 TCP segments\)")


def test_unsupported_link_type(tmp_path):
    path = tmp_path / "wifi.pcap"
    frame = b"\0" * 40
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 127)
                     + struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame)
    refused(path, r"link type unknown \(127\)")


def test_no_balancer_when_only_one_hop_was_captured(tmp_path):
    lab = ps.sequential_lab(ps.rotation(3))
    front_only = [p for p in lab.wire.packets if p[IP].dport == 80 or p[IP].sport == 80]
    assert all(p.haslayer(TCP) for p in front_only)
    path = ps.write_pcap(tmp_path / "front.pcap", front_only)
    refused(path, "no balancer in capture")
