"""What users see: JSON, the rich report, the flow diagram, the PNG and the CLI."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pcapsynth as ps
import pytest

from lab.analysis import analyse
from lab.analysis.cli import main
from lab.analysis.flowpng import write_flow_png
from lab.analysis.render import flow_text

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sequential_capture(tmp_path):
    lab = ps.sequential_lab(ps.rotation(6, start=1))
    return ps.write_pcap(tmp_path / "seq.pcap", lab.wire.packets)


@pytest.fixture
def broken_capture(tmp_path):
    lab = ps.sequential_lab(["app1", "app3", "app2", "app1", "app1", "app2"])
    return ps.write_pcap(tmp_path / "broken.pcap", lab.wire.packets)


def test_json_has_the_documented_keys_and_values(sequential_capture):
    data = json.loads(analyse(sequential_capture).to_json())
    assert data["requests"] == 6
    assert data["upstream_counts"] == {"app2": 2, "app3": 2, "app1": 2}
    assert data["round_robin"]["strict"] is True and data["round_robin"]["breaks"] == 0
    assert data["verdict"] == "pass"
    assert (data["traffic"], data["traffic_source"]) == ("sequential", "detected")
    assert data["pairing"]["method"] == "method+uri+time"
    assert data["unmatched"] == {"client": 0, "upstream": 0, "examples": []}
    assert data["retransmissions"] == 0
    assert data["response_times_ms"]["app1"] == {
        "count": 2, "p50_ms": 1.0, "p90_ms": 1.0, "max_ms": 1.0}
    assert data["packets"] == 93 and data["link_type"] == "Ethernet (1)"
    assert data["truncated"] is False


def test_json_lists_the_first_breaks(broken_capture):
    data = json.loads(analyse(broken_capture).to_json())
    assert data["verdict"] == "fail"
    assert data["round_robin"]["order"] == ["app1", "app3", "app2"]
    assert [(b["position"], b["expected"], b["got"])
            for b in data["round_robin"]["first_breaks"]] == [
        (5, "app3", "app1"), (6, "app3", "app2")]


def test_flow_text_draws_one_arrow_per_message(sequential_capture):
    result = analyse(sequential_capture, names=ps.NAMES, upstream_order=["app1", "app2", "app3"],
                     flow_limit=2)
    lines = flow_text(result).plain.splitlines()
    header, arrows = lines[0].split(), lines[2:]
    assert header[2:] == ["client", "balancer", "app1", "app2", "app3"]
    assert len(arrows) == 8  # 2 exchanges x (request, upstream request, 2 responses)
    assert "GET /item/1" in arrows[0] and "▶" in arrows[0]
    assert "200 app2" in arrows[2] and "◀" in arrows[2]
    assert f"#{result.flow[4].frame} " in arrows[4]


@pytest.fixture
def concurrent_capture(tmp_path):
    """Four requests in flight at once on the lab's real URIs, as a loadtest makes them."""
    lab = ps.Lab(echo_id=False)
    for _ in range(3):
        lab.batch(ps.rotation(4), uri="/categories/12/?page=3&sort=price")
    return ps.write_pcap(tmp_path / "concurrent.pcap", lab.wire.packets)


@pytest.mark.parametrize("width", [100, 80, 72])
def test_flow_text_fits_its_width_and_names_each_request(concurrent_capture, width):
    result = analyse(concurrent_capture, names=ps.NAMES, flow_limit=8)
    lines = flow_text(result, width).plain.splitlines()
    assert max(len(line) for line in lines) <= width
    arrows = lines[2:]
    assert len(arrows) == 4 * 8
    ids = {a.request for a in result.flow}
    assert len(ids) == 8  # one id per exchange, on the client's and the upstream side alike
    for arrow, line in zip(result.flow, arrows, strict=True):
        assert arrow.request.startswith("[") and arrow.request in line  # every arrow
        if arrow.kind == "response":  # a response names the request it answers
            assert f"{arrow.request} answered: " in line


def test_flow_responses_name_the_request_by_frame_without_ids(tmp_path):
    lab = ps.Lab(request_ids=False)
    lab.batch(["app1", "app2"])
    result = analyse(ps.write_pcap(tmp_path / "noid.pcap", lab.wire.packets), flow_limit=2)
    requests = {a.frame: a for a in result.flow if a.kind == "request"}
    for arrow in result.flow:
        if arrow.kind == "response":
            assert requests[int(arrow.request.lstrip("#"))].request == arrow.request


def test_flow_titles_count_the_exchanges_asked_for(sequential_capture, tmp_path, capsys):
    result = analyse(sequential_capture, flow_limit=2)
    assert result.flow_title() == "the first 2 exchanges (8 messages)"
    result = analyse(sequential_capture, flow_limit=10)
    assert result.flow_title() == "all 6 exchanges (24 messages; 10 asked)"
    assert main([str(sequential_capture), "--flow", "2"]) == 0
    assert "flow: the first 2 exchanges (8 messages)" in capsys.readouterr().out


def test_png_refuses_a_name_that_is_not_an_image(sequential_capture, tmp_path, capsys):
    out = tmp_path / "out.txt"
    assert main([str(sequential_capture), "--png", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ending in .png" in err and "Traceback" not in err
    assert not out.exists()


def test_report_prints_words_not_python_reprs(tmp_path, capsys):
    lab = ps.Lab(request_ids=False)
    lab.batch(["app1", "app2", "app3"], status=502)
    lab2 = ps.Lab(echo_id=True)
    lab2.wire = lab.wire  # one capture: some requests paired by id, some by method+URI
    lab2.batch(["app1", "app2", "app3"])
    capture = ps.write_pcap(tmp_path / "mixed.pcap", lab.wire.packets)
    main([str(capture)])
    out = capsys.readouterr().out
    assert not re.search(r"[{}]|\['|': ", out)  # no dict or list repr
    assert "paired: 3 by X-Request-ID, 3 by method+URI in time order" in " ".join(out.split())
    assert "502: 3" in out


def test_flow_png_is_written(sequential_capture, tmp_path):
    result = analyse(sequential_capture, flow_limit=3)
    write_flow_png(result, tmp_path / "flow.png")
    assert result.flow_title() == "the first 3 exchanges (12 messages)"
    png = (tmp_path / "flow.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_cli_passes_with_a_table(sequential_capture, capsys):
    assert main([str(sequential_capture), "--flow", "2"]) == 0
    out = capsys.readouterr().out
    assert "verdict: PASS" in out and "upstream requests per backend" in out
    assert "GET /item/1" in out


def test_cli_json_and_png(sequential_capture, tmp_path, capsys):
    png = tmp_path / "flow.png"
    assert main([str(sequential_capture), "--json", "--png", str(png)]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 6
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_exit_1_when_the_verdict_fails(broken_capture, capsys):
    assert main([str(broken_capture), "--sequential"]) == 1
    assert "verdict: FAIL" in capsys.readouterr().out


def test_cli_concurrent_flag_judges_balance(broken_capture, capsys):
    # counts 3/2/1: not balanced either
    assert main([str(broken_capture), "--concurrent", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["round_robin"]["spread"] == 2


def test_cli_exit_2_with_one_line_for_bad_input(tmp_path, capsys):
    assert main([str(tmp_path / "missing.pcap")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: capture ")


def test_cli_names_from_the_topology_file(sequential_capture, capsys):
    assert main([str(sequential_capture), "--json", "--topology",
                 str(REPO / "topology.yaml")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["balancer"]["name"] == "balancer"
    assert data["round_robin"]["order"] == ["app1", "app2", "app3"]
    assert data["round_robin"]["order_source"] == "given"


def test_python_m_entry_point_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_text("not a capture")
    run = subprocess.run([sys.executable, "-m", "lab.analysis", str(bad)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [run.stderr.strip()]
    assert "not a pcap or pcapng capture" in run.stderr
