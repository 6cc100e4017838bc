"""The upstream order found by the analyser equals tshark's (skipped without tshark)."""

import shutil
import subprocess

import pcapsynth as ps
import pytest

from lab.analysis import analyse
from lab.analysis.wire import read_http

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def tshark_upstream(path) -> list[tuple[str, int]]:
    run = subprocess.run(
        ["tshark", "-r", str(path), "-d", f"tcp.port=={ps.APP_PORT},http",
         "-Y", f"http.request && ip.src=={ps.BALANCER}",
         "-T", "fields", "-e", "ip.dst", "-e", "tcp.dstport"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return [(dst, int(port)) for dst, port in
            (line.split("\t") for line in run.stdout.splitlines())]


def test_upstream_order_matches_tshark(tmp_path):
    lab = ps.Lab()
    for batch in (["app1", "app2", "app3"], ["app3", "app1", "app2"], ["app2", "app2", "app1"]):
        lab.batch(batch, pieces=3, retransmit=True)
    for backend in ps.rotation(5):
        lab.exchange(backend, method="POST", body=b"k=v" * 400, pieces=4, reorder=True)
    path = ps.write_pcap(tmp_path / "mixed.pcap", lab.wire.packets)
    requests, _ = read_http(path)
    ours = [(r.server, r.server_port)
            for r in sorted(requests, key=lambda r: r.first_frame) if r.client == ps.BALANCER]
    assert ours == tshark_upstream(path)
    assert len(ours) == 14
    assert analyse(path).requests == 14
