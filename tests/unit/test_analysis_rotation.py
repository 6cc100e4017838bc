"""Round-robin verdicts, traffic detection, pairing and timings on synthetic captures."""

import pcapsynth as ps
import pytest

from lab.analysis import analyse

ORDER = ["app1", "app2", "app3"]


def write(tmp_path, lab: ps.Lab):
    return ps.write_pcap(tmp_path / "lab.pcap", lab.wire.packets)


def concurrent_lab(*batches, **options) -> ps.Lab:
    lab = ps.Lab(**options)
    for batch in batches:
        lab.batch(list(batch))
    return lab


def test_strict_rotation_passes_whatever_backend_starts(tmp_path):
    result = analyse(write(tmp_path, ps.sequential_lab(ps.rotation(9, start=1))))
    assert (result.client_requests, result.requests) == (9, 9)
    assert result.upstream_counts == {"app2": 3, "app3": 3, "app1": 3}
    assert result.upstream_order == ["app2", "app3", "app1"]
    assert result.strict_rotation and result.breaks == []
    assert (result.traffic, result.traffic_source) == ("sequential", "detected")
    assert result.verdict == "pass"


def test_topology_names_and_order_are_used(tmp_path):
    path = write(tmp_path, ps.sequential_lab(ps.rotation(6, start=2)))
    result = analyse(path, names=ps.NAMES, upstream_order=ORDER)
    assert (result.balancer, result.balancer_address) == ("balancer", ps.BALANCER)
    assert list(result.upstream_counts) == ORDER
    assert (result.upstream_order, result.order_source) == (ORDER, "given")
    assert result.verdict == "pass"


def test_broken_rotation_fails_sequential_traffic(tmp_path):
    backends = ["app1", "app2", "app3", "app1", "app3", "app2", "app1", "app2", "app3"]
    result = analyse(write(tmp_path, ps.sequential_lab(backends)), upstream_order=ORDER)
    assert [(b.position, b.expected, b.got) for b in result.breaks] == [
        (5, "app2", "app3"), (6, "app1", "app2"), (7, "app3", "app1")]
    assert not result.strict_rotation
    assert result.verdict == "fail"
    assert "3 break(s) in 9 upstream requests" in result.reasons[0]


def test_inferred_order_is_not_fooled_by_an_early_break(tmp_path):
    backends = ["app1", "app3", "app2"] + ps.rotation(12)
    result = analyse(write(tmp_path, ps.sequential_lab(backends)))
    assert (result.upstream_order, result.order_source) == (ORDER, "inferred")
    assert len(result.breaks) == 3  # first appearance (1,3,2) would count 12


def test_idle_backend_of_the_topology_breaks_the_rotation(tmp_path):
    path = write(tmp_path, ps.sequential_lab(["app1", "app2"] * 3))
    alone = analyse(path)
    assert alone.verdict == "pass" and alone.upstream_counts == {"app1": 3, "app2": 3}
    assert any("cannot be seen" in note for note in alone.notes)
    checked = analyse(path, upstream_order=ORDER)
    assert checked.upstream_counts == {"app1": 3, "app2": 3, "app3": 0}
    assert checked.verdict == "fail"
    assert [(b.expected, b.got) for b in checked.breaks[:1]] == [("app3", "app1")]


def test_concurrent_balanced_traffic_passes_despite_breaks(tmp_path):
    lab = concurrent_lab(["app1", "app2", "app3"], ["app3", "app1", "app2"],
                         ["app2", "app3", "app1"])
    result = analyse(write(tmp_path, lab))
    assert (result.traffic, result.traffic_source) == ("concurrent", "detected")
    assert result.upstream_counts == {"app1": 3, "app2": 3, "app3": 3}
    assert result.breaks and result.spread == 0
    assert result.verdict == "pass"


def test_concurrent_unbalanced_traffic_fails(tmp_path):
    lab = concurrent_lab(["app1", "app1", "app2"], ["app1", "app3", "app1"])
    result = analyse(write(tmp_path, lab))
    assert result.upstream_counts == {"app1": 4, "app2": 1, "app3": 1}
    assert result.spread == 3
    assert result.verdict == "fail"
    assert "differ by 3" in result.reasons[0]


def test_given_traffic_kind_overrides_detection(tmp_path):
    lab = concurrent_lab(["app1", "app2", "app3"], ["app3", "app1", "app2"])
    path = write(tmp_path, lab)
    result = analyse(path, traffic="sequential")
    assert (result.traffic, result.traffic_source) == ("sequential", "given")
    assert result.verdict == "fail"
    assert analyse(path, traffic="concurrent").verdict == "pass"


def test_unknown_traffic_kind_is_refused(tmp_path):
    path = write(tmp_path, ps.sequential_lab(["app1"]))
    with pytest.raises(ValueError, match="bursty"):
        analyse(path, traffic="bursty")


def test_pairing_by_method_uri_and_time_without_client_side_ids(tmp_path):
    result = analyse(write(tmp_path, ps.sequential_lab(ps.rotation(6))))
    assert result.pairing == "method+uri+time"
    assert result.paired == 6
    assert (result.unmatched_client, result.unmatched_upstream) == (0, 0)


def test_pairing_by_request_id_echoed_to_the_client(tmp_path):
    result = analyse(write(tmp_path, ps.sequential_lab(ps.rotation(6), echo_id=True)))
    assert result.pairing == "x-request-id"
    assert result.pairing_counts == {"x-request-id": 6, "method+uri+time": 0}


def test_capture_without_request_ids_is_analysed_by_connection_order(tmp_path):
    lab = ps.sequential_lab(ps.rotation(6), request_ids=False)
    result = analyse(write(tmp_path, lab))
    assert result.request_ids == "none"
    assert any("carry no X-Request-ID" in note for note in result.notes)
    assert result.upstream_counts == {"app1": 2, "app2": 2, "app3": 2}
    assert result.pairing == "method+uri+time" and result.paired == 6
    assert result.verdict == "pass"


def test_unmatched_requests_on_both_sides_are_reported(tmp_path):
    lab = ps.sequential_lab(ps.rotation(3))
    answered_by_nginx = lab.wire.connect(ps.CLIENT, ps.BALANCER, ps.HTTP_PORT)
    answered_by_nginx.send(True, ps.http_request("GET", "/down"))
    answered_by_nginx.send(False, ps.http_response(502))
    health_check = lab.wire.connect(ps.BALANCER, ps.APPS["app1"], ps.APP_PORT)
    health_check.send(True, ps.http_request("GET", "/health", request_id="ab" * 16))
    health_check.send(False, ps.http_response(200, "app1"))
    result = analyse(write(tmp_path, lab))
    assert (result.unmatched_client, result.unmatched_upstream) == (1, 1)
    assert any("/down" in example for example in result.unmatched_examples)
    assert any("/health" in example for example in result.unmatched_examples)
    assert result.statuses["client"] == {"200": 3, "502": 1}
    assert any("502" in warning for warning in result.warnings)


def test_upstream_response_times_per_backend(tmp_path):
    lab = ps.sequential_lab(ps.rotation(9), delays={"app2": 0.050, "app3": 0.200})
    times = analyse(write(tmp_path, lab)).response_times
    # each app answers one clock step (0.5 ms) after the request's ACK: 1 ms + its delay
    assert (times["app1"].count, times["app1"].p50_ms, times["app1"].max_ms) == (3, 1.0, 1.0)
    assert times["app2"].p90_ms == pytest.approx(51.0)
    assert times["app3"].p50_ms == pytest.approx(201.0)


def test_upstream_only_capture_uses_the_sender_as_balancer(tmp_path):
    lab = ps.sequential_lab(ps.rotation(6))
    upstream_only = [p for p in lab.wire.packets if ps.CLIENT not in (p.src, p.dst)]
    result = analyse(ps.write_pcap(tmp_path / "up.pcap", upstream_only))
    assert result.balancer_address == ps.BALANCER
    assert (result.client_requests, result.requests) == (0, 6)
    assert result.pairing == "none"
    assert result.verdict == "pass"


def test_whole_lab_on_one_address_is_split_by_port(tmp_path):
    """A student's localhost setup: nginx on :80, apps on :8001-8003, client local too."""
    wire = ps.Wire()
    here = "127.0.0.1"
    upstream = {name: wire.connect(here, here, 8001 + i) for i, name in enumerate(ORDER)}
    for number, backend in enumerate(ps.rotation(6)):
        front = wire.connect(here, here, 80)
        front.send(True, ps.http_request("GET", f"/p/{number}"))
        upstream[backend].send(True, ps.http_request("GET", f"/p/{number}"))
        upstream[backend].send(False, ps.http_response(200, backend))
        front.send(False, ps.http_response(200))
    result = analyse(ps.write_pcap(tmp_path / "lo.pcap", wire.packets), flow_limit=1)
    assert (result.client_requests, result.requests) == (6, 6)
    assert result.upstream_counts == {"app1": 2, "app2": 2, "app3": 2}
    assert result.verdict == "pass"
    assert [name for name, _ in result.columns[:2]] == ["127.0.0.1 (client)", "127.0.0.1"]
