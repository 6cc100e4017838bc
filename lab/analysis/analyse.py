"""analyse(): from a capture to a round-robin verdict.

Roles are found from the traffic itself: the balancer is the address that both receives
HTTP requests (from clients) and sends them (to apps). Backends are (address, port) pairs,
shown by name when ``names`` or the apps' X-Served-By header tells it.

The capture is read once, as a stream (``lab.analysis.wire``), into a ``Tally`` that keeps
counts, not requests; this module turns the tally into the result.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import TextIO

from lab.analysis.http import HttpRequest
from lab.analysis.pairing import BY_METHOD_URI_TIME, BY_REQUEST_ID, Pairing
from lab.analysis.result import Analysis, FlowArrow
from lab.analysis.roles import Route
from lab.analysis.rotation import (
    RotationBreak,
    UpstreamSequence,
    infer_order,
    rotation_breaks,
    spread,
)
from lab.analysis.tally import MANY, UPSTREAM, Tally
from lab.analysis.timing import Latencies, ResponseTimes
from lab.analysis.wire import WireStats, read_wire

TRAFFIC_KINDS = ("sequential", "concurrent")


def analyse(
    path: str | os.PathLike,
    *,
    names: dict[str, str] | None = None,
    upstream_order: list[str] | None = None,
    traffic: str | None = None,
    flow_limit: int = 20,
    upstream_log: TextIO | None = None,
) -> Analysis:
    """Analyse one capture taken on the balancer.

    names: address -> name (e.g. from the topology); upstream_order: the apps in the
    balancer's configured order, as names or addresses; traffic: "sequential",
    "concurrent" or None to detect it; flow_limit: exchanges kept for the flow diagram;
    upstream_log: a seekable text file that gets "address<TAB>port" of every upstream
    request, in order. Raises CaptureError for unusable input.
    """
    if traffic not in (None, *TRAFFIC_KINDS):
        raise ValueError(f"traffic must be one of {TRAFFIC_KINDS} or None, not {traffic!r}")
    path = os.fspath(path)
    tally = Tally(path, flow_limit, upstream_log=upstream_log)
    stats = read_wire(path, tally)
    roles = tally.finish()
    if roles != tally.roles:  # the first requests pointed elsewhere: read again, knowing
        if upstream_log is not None:
            upstream_log.seek(0)
            upstream_log.truncate()
        tally = Tally(path, flow_limit, roles, upstream_log)
        stats = read_wire(path, tally)
        tally.finish()
    return _result(stats, tally, dict(names or {}), upstream_order, traffic)


def _result(stats: WireStats, tally: Tally, names: dict[str, str],
            upstream_order: list[str] | None, traffic: str | None) -> Analysis:
    balancer = tally.roles.balancer
    labels = backend_labels(tally, names)
    sequence = tally.sequence.renamed(lambda stats: labels[stats.route])
    warnings: list[str] = []
    notes: list[str] = []
    order, order_source = _choose_order(upstream_order, sequence, labels, names, warnings)
    counts = _counts(order, sequence)
    break_count, breaks = rotation_breaks(sequence, order)
    pairing = tally.pairing()
    traffic_source = "given" if traffic else "detected"
    judged_side = tally.client if tally.client.requests else tally.upstream
    traffic = traffic or judged_side.overlap.kind
    upstream_total = tally.upstream.requests
    verdict, reasons = judge(traffic, upstream_total, order, counts, break_count, breaks)
    request_ids = _request_id_presence(tally)
    statuses = {"client": tally.client.status_counts(),
                "upstream": tally.upstream.status_counts()}
    _explain(stats, tally, pairing, request_ids, statuses, order_source, traffic,
             traffic_source, warnings, notes)
    columns, flow, exchanges = build_flow(tally, labels, names, balancer, order)
    return Analysis(
        path=stats.path,
        capture_format=stats.format,
        link_types=stats.link_types,
        packets=stats.packets,
        tcp_segments=stats.tcp_segments,
        connections=stats.connections,
        retransmissions=stats.retransmissions,
        truncated=stats.truncated,
        balancer=names.get(balancer, balancer),
        balancer_address=balancer,
        client_requests=tally.client.requests,
        requests=upstream_total,
        upstream_counts=counts,
        upstream_order=order,
        order_source=order_source,
        strict_rotation=not break_count and bool(upstream_total),
        break_count=break_count,
        breaks=breaks,
        spread=spread(counts),
        traffic=traffic,
        traffic_source=traffic_source,
        pairing=pairing.method,
        pairing_counts=dict(pairing.by),
        paired=pairing.paired,
        unmatched_client=pairing.unmatched_client,
        unmatched_upstream=pairing.unmatched_upstream,
        unmatched_examples=_unmatched_examples(pairing, labels),
        retries=pairing.retries,
        request_ids=request_ids,
        response_times=response_times(tally, labels, counts),
        statuses=statuses,
        verdict=verdict,
        reasons=reasons,
        warnings=warnings,
        notes=notes,
        columns=columns,
        flow=flow,
        flow_exchanges=exchanges,
        flow_asked=tally.flow_limit,
    )


# -- names -----------------------------------------------------------------------------


def endpoint_text(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def backend_labels(tally: Tally, names: dict[str, str]) -> dict[Route, str]:
    """Upstream route -> the backend's display name.

    Order of preference: ``names``, then the X-Served-By value the backend always answered
    with, then address:port.
    """
    labels = {}
    for route, stats in tally.routes.items():
        if stats.side is not UPSTREAM or not stats.requests:
            continue
        _, address, port = route
        served_by = stats.served_by.decode("latin-1") \
            if stats.served_by not in (None, MANY) else None
        labels[route] = names.get(address) or served_by or endpoint_text(address, port)
    taken = Counter(labels.values())
    for route, label in labels.items():
        _, address, port = route
        if taken[label] > 1:  # two backends with one name: tell them apart by port
            labels[route] = f"{label}:{port}" if label != address else label
    return labels


# -- order, counts, verdict ------------------------------------------------------------


def _choose_order(given, sequence: UpstreamSequence, labels, names, warnings):
    if given:
        resolved = _resolve_order(given, labels, names)
        if resolved is not None:
            return resolved, "given"
        warnings.append(
            f"the given upstream order ({', '.join(given)}) names no backend in this "
            "capture; "
            "the order was inferred from the capture instead"
        )
    order = infer_order(sequence)
    source = "first appearance" if order == sequence.first_appearance() else "inferred"
    return order, source


def _resolve_order(given, labels, names):
    """Map each given entry (name, address or address:port) to a backend label."""
    aliases = {}
    for (_, address, port), label in labels.items():
        for alias in (label, address, endpoint_text(address, port), names.get(address)):
            if alias:
                aliases.setdefault(alias, label)
    if not any(entry in aliases for entry in given):
        return None
    return list(dict.fromkeys(aliases.get(entry, entry) for entry in given))


def _counts(order: list[str], sequence: UpstreamSequence) -> dict[str, int]:
    """Requests per backend: every backend of the order (0 if idle), then any others."""
    seen = sequence.counts
    counts = {name: seen.get(name, 0) for name in order}
    for name in sequence.first_appearance():
        counts.setdefault(name, seen[name])
    return counts


def judge(traffic: str, total: int, order: list[str], counts: dict[str, int],
          break_count: int, breaks: list[RotationBreak]) -> tuple[str, list[str]]:
    if not total:
        return "fail", ["no balancer→app requests in the capture"]
    if traffic == "sequential":
        if break_count:
            first = breaks[0]
            return "fail", [
                f"sequential traffic needs a strict rotation: {break_count} break(s) in "
                f"{total} upstream requests; first at request {first.position} (frame "
                f"{first.frame}): expected {first.expected}, got {first.got}"
            ]
        cycle = " → ".join(order)
        return "pass", [f"strict rotation {cycle}: {total} upstream requests, 0 breaks"]
    shown = ", ".join(f"{name} {count}" for name, count in counts.items())
    difference = spread(counts)
    if difference > 1:
        return "fail", [
            f"concurrent traffic needs balanced counts (max − min ≤ 1): {shown} "
            f"differ by {difference}"
        ]
    return "pass", [f"balanced counts: {shown} (max − min = {difference})"]


# -- measures --------------------------------------------------------------------------


def response_times(tally: Tally, labels: dict[Route, str], counts: dict[str, int]
                   ) -> dict[str, ResponseTimes | None]:
    merged = {name: Latencies() for name in counts}
    for route, label in labels.items():
        merged[label].merge(tally.routes[route].latencies)
    return {name: latencies.summary() for name, latencies in merged.items()}


def _request_id_presence(tally: Tally) -> str:
    with_id = sum(tally.routes[route].with_id for route in tally.routes
                  if tally.routes[route].side is UPSTREAM)
    if with_id and with_id == tally.upstream.requests:
        return "all"
    return "some" if with_id else "none"


def _unmatched_examples(pairing: Pairing, labels: dict[Route, str]) -> list[str]:
    examples = [
        f"client request frame {r.first_frame}: {r.method} {r.uri} (status {r.status})"
        for r in pairing.client_examples
    ]
    examples += [
        f"upstream request frame {r.first_frame}: {r.method} {r.uri} to "
        f"{labels[r.route.key]}"
        for r in pairing.upstream_examples
    ]
    return examples


# -- what the reader should know --------------------------------------------------------


def _explain(stats: WireStats, tally: Tally, pairing: Pairing, request_ids: str,
             statuses: dict[str, dict[str, int]], order_source, traffic, traffic_source,
             warnings, notes) -> None:
    _warn_about_capture(stats, warnings)
    has_client = bool(tally.client.requests)
    if not has_client:
        notes.append("no client→balancer requests in the capture: only the upstream side "
                     "is analysed, nothing is paired")
    if tally.upstream.requests and request_ids == "none":
        notes.append("upstream requests carry no X-Request-ID (a capture made elsewhere?): "
                     "they are told apart by upstream connection and order on it")
    if has_client:
        notes.append(_pairing_note(pairing))
    if order_source != "given":
        notes.append(f"upstream order by {order_source} in the capture (a cycle: it may "
                     "start anywhere); a backend that got no request cannot be seen: "
                     "give the topology's order to check for it")
    side = "client" if has_client else "upstream"
    notes.append(f"traffic {traffic} ({traffic_source}"
                 + (f" from {side} request overlap)" if traffic_source == "detected" else ")"))
    if pairing.unmatched_client or pairing.unmatched_upstream:
        warnings.append(f"{pairing.unmatched_client} client request(s) without an "
                        f"upstream request and {pairing.unmatched_upstream} upstream "
                        "request(s) without a client request")
    if pairing.retries:
        warnings.append(f"{pairing.retries} upstream request(s) repeat an X-Request-ID: "
                        "nginx retried another backend")
    shown = dict(statuses[side])
    unanswered = shown.pop("none", 0)
    failed = {status: n for status, n in shown.items() if not status.startswith("2")}
    if failed:
        warnings.append(f"responses that are not 2xx ({side} side): "
                        f"{counts_in_words(failed)}")
    if unanswered:
        warnings.append(f"{unanswered} {side} request(s) with no response in the capture")


def _pairing_note(pairing: Pairing) -> str:
    if pairing.method == BY_REQUEST_ID:
        return "client and upstream requests paired by X-Request-ID"
    if pairing.method == BY_METHOD_URI_TIME:
        return ("client and upstream requests paired by method+URI in time order (the "
                "client side carries no X-Request-ID); same-URI requests in flight at "
                "once may be swapped")
    used = [f"{count} by {PAIRING_WORDS.get(method, method)}"
            for method, count in pairing.by.items() if count]
    return f"client and upstream requests paired: {', '.join(used) or 'none'}"


PAIRING_WORDS = {BY_REQUEST_ID: "X-Request-ID", BY_METHOD_URI_TIME: "method+URI in time order"}


def counts_in_words(counts: dict[str, int]) -> str:
    """{'502': 3, '504': 1} as '502: 3, 504: 1' (no Python repr in what people read)."""
    return ", ".join(f"{key}: {value}" for key, value in counts.items())


def _warn_about_capture(stats: WireStats, warnings: list[str]) -> None:
    if stats.truncated:
        warnings.append(f"the capture is truncated ({stats.truncated}): analysed the "
                        f"{stats.packets} packets before it (tcpdump killed mid-write?)")
    counts = stats.dissect
    if counts.cut_by_snaplen:
        warnings.append(f"{counts.cut_by_snaplen} packets were cut by the snapshot length: "
                        "capture with tcpdump -s 0")
    if stats.bytes_not_captured:
        warnings.append(f"{stats.bytes_not_captured} bytes of TCP streams are not in the "
                        "capture (dropped packets or capture started mid-connection)")
    if counts.ip_fragments:
        warnings.append(f"{counts.ip_fragments} IP fragments ignored (not reassembled)")
    if counts.unknown_link_types:
        shown = ", ".join(str(kind) for kind in sorted(counts.unknown_link_types))
        warnings.append(f"frames of link types {shown} ignored")
    if stats.orphan_responses:
        warnings.append(f"{stats.orphan_responses} responses with no request seen before")
    warnings.extend(f"reader: {message}" for message in stats.reader_warnings[:5])


# -- flow diagram data -----------------------------------------------------------------


def build_flow(tally: Tally, labels: dict[Route, str], names: dict[str, str], balancer: str,
               order: list[str]):
    """Columns (name, address) and arrows of the first ``flow_limit`` exchanges.

    The tally kept the first ``flow_limit`` requests of each side and the partners of
    those client requests: enough for the first exchanges, whatever they pair with.
    """
    if tally.client.requests:
        exchanges = [(front, tally.partners.get(front)) for front in tally.flow_clients]
        exchanges += [(None, back) for back in tally.flow_upstream if not back.paired]
    else:
        exchanges = [(None, back) for back in tally.flow_upstream]
    exchanges.sort(key=lambda pair: (pair[0] or pair[1]).first_frame)
    balancer_name = names.get(balancer, balancer)
    arrows: list[FlowArrow] = []
    clients: dict[str, str] = {}
    shown = exchanges[:tally.flow_limit]
    for front, back in shown:
        request_id = (back.request_id if back is not None else None) or \
            (front.request_id if front is not None else None)
        if front is not None:
            name = names.get(front.client, front.client)
            if name == balancer_name:  # the client runs on the balancer's host
                name += " (client)"
            clients.setdefault(name, front.client)
            arrows += _arrows(front, name, balancer_name, request_id)
        if back is not None:
            arrows += _arrows(back, balancer_name, labels[back.route.key], request_id)
    arrows.sort(key=lambda arrow: arrow.frame)
    addresses = {label: endpoint_text(address, port)
                 for (_, address, port), label in labels.items()}
    backends = list(dict.fromkeys([*order, *labels.values()]))
    columns = [*((name, address) for name, address in clients.items()),
               (balancer_name, balancer),
               *((name, addresses.get(name, "")) for name in backends)]
    return columns, arrows, len(shown)


def _arrows(request: HttpRequest, source: str, target: str, request_id: str | None):
    """A request's arrow and its response's, both naming the request: by its X-Request-ID
    (the upstream one, for the client's side too), else by the request's frame."""
    name = f"[{request_id[:8]}]" if request_id else f"#{request.first_frame}"
    arrows = [FlowArrow(request.first_frame, request.first_ts, source, target,
                        f"{request.method} {request.uri}", "request", request=name)]
    if request.response_frame is not None:
        answer = str(request.status) + (f" {request.served_by}" if request.served_by else "")
        arrows.append(FlowArrow(request.response_frame, request.response_ts, target, source,
                                answer, "response", failed=request.status >= 500,
                                request=name))
    return arrows
