"""analyse(): from a capture to a round-robin verdict.

Roles are found from the traffic itself: the balancer is the address that both receives
HTTP requests (from clients) and sends them (to apps). Backends are (address, port) pairs,
shown by name when ``names`` or the apps' X-Served-By header tells it.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

from lab.analysis.errors import CaptureError
from lab.analysis.http import HttpRequest
from lab.analysis.pairing import Pairing, pair_requests
from lab.analysis.result import Analysis, FlowArrow, ResponseTimes
from lab.analysis.rotation import (
    RotationBreak,
    first_appearance,
    infer_order,
    rotation_breaks,
    spread,
)
from lab.analysis.wire import WireStats, read_http

TRAFFIC_KINDS = ("sequential", "concurrent")
EXAMPLES = 5


def analyse(
    path: str | os.PathLike,
    *,
    names: dict[str, str] | None = None,
    upstream_order: list[str] | None = None,
    traffic: str | None = None,
    flow_limit: int = 20,
) -> Analysis:
    """Analyse one capture taken on the balancer.

    names: address -> name (e.g. from the topology); upstream_order: the apps in the
    balancer's configured order, as names or addresses; traffic: "sequential",
    "concurrent" or None to detect it. Raises CaptureError for unusable input.
    """
    if traffic not in (None, *TRAFFIC_KINDS):
        raise ValueError(f"traffic must be one of {TRAFFIC_KINDS} or None, not {traffic!r}")
    requests, stats = read_http(path)
    names = dict(names or {})
    balancer = find_balancer(requests, stats.path)
    client, upstream = split_sides(requests, balancer)
    labels = backend_labels(upstream, names)
    sequence = [labels[(r.server, r.server_port)] for r in upstream]
    warnings, notes = [], []
    order, order_source = _choose_order(upstream_order, sequence, labels, names, warnings)
    counts = _counts(order, sequence)
    breaks = rotation_breaks(sequence, [r.first_frame for r in upstream], order)
    pairing = pair_requests(client, upstream) if client else Pairing()
    traffic_source = "given" if traffic else "detected"
    traffic = traffic or detect_traffic(client or upstream)
    verdict, reasons = judge(traffic, len(upstream), order, counts, breaks)
    _explain(stats, client, upstream, pairing, order_source, traffic, traffic_source,
             warnings, notes)
    columns, flow = build_flow(client, upstream, pairing, labels, names, balancer, order,
                               flow_limit)
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
        client_requests=len(client),
        requests=len(upstream),
        upstream_counts=counts,
        upstream_order=order,
        order_source=order_source,
        strict_rotation=not breaks and bool(upstream),
        breaks=breaks,
        spread=spread(counts),
        traffic=traffic,
        traffic_source=traffic_source,
        pairing=pairing.method,
        pairing_counts=dict(pairing.by),
        paired=len(pairing.pairs),
        unmatched_client=len(pairing.unmatched_client),
        unmatched_upstream=len(pairing.unmatched_upstream),
        unmatched_examples=_unmatched_examples(pairing, labels),
        retries=pairing.retries,
        request_ids=_request_id_presence(upstream),
        response_times=response_times(upstream, labels, counts),
        statuses={"client": _statuses(client), "upstream": _statuses(upstream)},
        verdict=verdict,
        reasons=reasons,
        warnings=warnings,
        notes=notes,
        columns=columns,
        flow=flow,
    )


def _by_frame(request: HttpRequest) -> int:
    return request.first_frame


# -- roles and names -------------------------------------------------------------------


def find_balancer(requests: list[HttpRequest], path: str) -> str:
    """The address that both receives and sends HTTP requests.

    Failing that (a capture of the app side only), the one client that sends to two or
    more servers stands in for it.
    """
    received = Counter(r.server for r in requests)
    sent = Counter(r.client for r in requests)
    both = [address for address in received if address in sent]
    if both:
        return max(both, key=lambda a: (min(received[a], sent[a]), received[a] + sent[a]))
    servers = defaultdict(set)
    for request in requests:
        servers[request.client].add((request.server, request.server_port))
    spreading = [address for address, seen in servers.items() if len(seen) >= 2]
    if spreading:
        return max(spreading, key=lambda a: sent[a])
    talk = ", ".join(sorted({f"{r.client} -> {r.server}:{r.server_port}" for r in requests}))
    raise CaptureError(
        f"no balancer in capture {path}: requests only go {talk[:200]}, and no address both "
        "receives and sends HTTP requests; capture on the balancer's interface so that "
        "client→balancer and balancer→app traffic are both in it"
    )


def split_sides(requests: list[HttpRequest], balancer: str):
    """(client→balancer requests, balancer→app requests), each in capture order.

    The front is the balancer's listening endpoint. When the balancer's address also
    sends requests to itself (client on the balancer host, or a whole lab on localhost),
    the busiest endpoint on that address is the front: it gets every request, each app
    only its share.
    """
    received = Counter((r.server, r.server_port) for r in requests if r.server == balancer)
    front = received.most_common(1)[0][0] if received else None
    client = [r for r in requests if (r.server, r.server_port) == front]
    upstream = [r for r in requests
                if r.client == balancer and (r.server, r.server_port) != front]
    return sorted(client, key=_by_frame), sorted(upstream, key=_by_frame)


def endpoint_text(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def backend_labels(upstream: list[HttpRequest], names: dict[str, str]) -> dict:
    """(address, port) -> the backend's display name.

    Order of preference: ``names``, then the X-Served-By value the backend always answered
    with, then address:port.
    """
    served_by: dict[tuple[str, int], set] = defaultdict(set)
    for request in upstream:
        served_by[(request.server, request.server_port)].add(request.served_by)
    labels = {}
    for (address, port), values in served_by.items():
        values.discard(None)
        name = names.get(address) or (values.pop() if len(values) == 1 else None)
        labels[(address, port)] = name or endpoint_text(address, port)
    taken = Counter(labels.values())
    for (address, port), label in labels.items():
        if taken[label] > 1:  # two backends with one name: tell them apart by port
            labels[(address, port)] = f"{label}:{port}" if label != address else label
    return labels


# -- order, counts, verdict ------------------------------------------------------------


def _choose_order(given, sequence, labels, names, warnings):
    if given:
        resolved = _resolve_order(given, labels, names)
        if resolved is not None:
            return resolved, "given"
        warnings.append(
            f"the given upstream order {given} names no backend in this capture; "
            "the order was inferred from the capture instead"
        )
    order = infer_order(sequence)
    source = "first appearance" if order == first_appearance(sequence) else "inferred"
    return order, source


def _resolve_order(given, labels, names):
    """Map each given entry (name, address or address:port) to a backend label."""
    aliases = {}
    for (address, port), label in labels.items():
        for alias in (label, address, endpoint_text(address, port), names.get(address)):
            if alias:
                aliases.setdefault(alias, label)
    if not any(entry in aliases for entry in given):
        return None
    return list(dict.fromkeys(aliases.get(entry, entry) for entry in given))


def _counts(order: list[str], sequence: list[str]) -> dict[str, int]:
    """Requests per backend: every backend of the order (0 if idle), then any others."""
    seen = Counter(sequence)
    counts = {name: seen.get(name, 0) for name in order}
    for name in first_appearance(sequence):
        counts.setdefault(name, seen[name])
    return counts


def detect_traffic(requests: list[HttpRequest]) -> str:
    """Sequential if no request starts before the previous response has ended."""
    latest_end = 0
    for request in sorted(requests, key=_by_frame):
        if request.first_frame < latest_end:
            return "concurrent"
        end = request.response_end_frame or request.response_frame or request.last_frame
        latest_end = max(latest_end, end)
    return "sequential"


def judge(traffic: str, total: int, order: list[str], counts: dict[str, int],
          breaks: list[RotationBreak]) -> tuple[str, list[str]]:
    if not total:
        return "fail", ["no balancer→app requests in the capture"]
    if traffic == "sequential":
        if breaks:
            first = breaks[0]
            return "fail", [
                f"sequential traffic needs a strict rotation: {len(breaks)} break(s) in "
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


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, -(-len(values) * share // 1))  # ceil without floats drifting
    return values[int(rank) - 1]


def response_times(upstream, labels, counts) -> dict[str, ResponseTimes | None]:
    waits: dict[str, list[float]] = {name: [] for name in counts}
    for request in upstream:
        if request.response_ts is not None:
            waits[labels[(request.server, request.server_port)]].append(
                max(0.0, request.response_ts - request.last_ts) * 1000
            )
    times = {}
    for name, values in waits.items():
        values.sort()
        times[name] = ResponseTimes(
            len(values), round(percentile(values, 0.5), 3), round(percentile(values, 0.9), 3),
            round(values[-1], 3),
        ) if values else None
    return times


def _statuses(requests: list[HttpRequest]) -> dict[str, int]:
    counts = Counter(str(r.status) if r.status else "none" for r in requests)
    return dict(sorted(counts.items()))


def _request_id_presence(upstream: list[HttpRequest]) -> str:
    with_id = sum(1 for r in upstream if r.request_id)
    if with_id == len(upstream) and with_id:
        return "all"
    return "some" if with_id else "none"


def _unmatched_examples(pairing: Pairing, labels: dict) -> list[str]:
    examples = [
        f"client request frame {r.first_frame}: {r.method} {r.uri} (status {r.status})"
        for r in pairing.unmatched_client[:EXAMPLES]
    ]
    examples += [
        f"upstream request frame {r.first_frame}: {r.method} {r.uri} to "
        f"{labels[(r.server, r.server_port)]}"
        for r in pairing.unmatched_upstream[:EXAMPLES]
    ]
    return examples


# -- what the reader should know --------------------------------------------------------


def _explain(stats: WireStats, client, upstream, pairing, order_source, traffic,
             traffic_source, warnings, notes) -> None:
    _warn_about_capture(stats, warnings)
    if not client:
        notes.append("no client→balancer requests in the capture: only the upstream side "
                     "is analysed, nothing is paired")
    if upstream and not any(r.request_id for r in upstream):
        notes.append("upstream requests carry no X-Request-ID (a capture made elsewhere?): "
                     "they are told apart by upstream connection and order on it")
    if client:
        notes.append(_pairing_note(pairing))
    if order_source != "given":
        notes.append(f"upstream order by {order_source} in the capture (a cycle: it may "
                     "start anywhere); a backend that got no request cannot be seen: "
                     "give the topology's order to check for it")
    side = "client" if client else "upstream"
    notes.append(f"traffic {traffic} ({traffic_source}"
                 + (f" from {side} request overlap)" if traffic_source == "detected" else ")"))
    if pairing.unmatched_client or pairing.unmatched_upstream:
        warnings.append(f"{len(pairing.unmatched_client)} client request(s) without an "
                        f"upstream request and {len(pairing.unmatched_upstream)} upstream "
                        "request(s) without a client request")
    if pairing.retries:
        warnings.append(f"{pairing.retries} upstream request(s) repeat an X-Request-ID: "
                        "nginx retried another backend")
    statuses = _statuses(client or upstream)
    unanswered = statuses.pop("none", 0)
    failed = {status: n for status, n in statuses.items() if not status.startswith("2")}
    if failed:
        warnings.append(f"responses that are not 2xx ({side} side): {failed}")
    if unanswered:
        warnings.append(f"{unanswered} {side} request(s) with no response in the capture")


def _pairing_note(pairing: Pairing) -> str:
    if pairing.method == "x-request-id":
        return "client and upstream requests paired by X-Request-ID"
    if pairing.method == "method+uri+time":
        return ("client and upstream requests paired by method+URI in time order (the "
                "client side carries no X-Request-ID); same-URI requests in flight at "
                "once may be swapped")
    return f"client and upstream requests paired by: {pairing.by}"


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
        warnings.append(f"frames of link types {sorted(counts.unknown_link_types)} ignored")
    if stats.orphan_responses:
        warnings.append(f"{stats.orphan_responses} responses with no request seen before")
    warnings.extend(f"reader: {message}" for message in stats.reader_warnings[:5])


# -- flow diagram data -----------------------------------------------------------------


def build_flow(client, upstream, pairing, labels, names, balancer, order, limit):
    """Columns (name, address) and arrows of the first ``limit`` exchanges."""
    exchanges = [*pairing.pairs, *((c, None) for c in pairing.unmatched_client),
                 *((None, u) for u in pairing.unmatched_upstream)]
    if not client:
        exchanges = [(None, u) for u in upstream]
    exchanges.sort(key=lambda pair: (pair[0] or pair[1]).first_frame)
    balancer_name = names.get(balancer, balancer)
    arrows: list[FlowArrow] = []
    clients: dict[str, str] = {}
    for front, back in exchanges[:max(limit, 0)]:
        if front is not None:
            name = names.get(front.client, front.client)
            if name == balancer_name:  # the client runs on the balancer's host
                name += " (client)"
            clients.setdefault(name, front.client)
            arrows += _arrows(front, name, balancer_name, with_id=False)
        if back is not None:
            backend = labels[(back.server, back.server_port)]
            arrows += _arrows(back, balancer_name, backend, with_id=True)
    arrows.sort(key=lambda arrow: arrow.frame)
    addresses = {label: endpoint_text(*key) for key, label in labels.items()}
    backends = list(dict.fromkeys([*order, *labels.values()]))
    columns = [*((name, address) for name, address in clients.items()),
               (balancer_name, balancer),
               *((name, addresses.get(name, "")) for name in backends)]
    return columns, arrows


def _arrows(request: HttpRequest, source: str, target: str, with_id: bool):
    label = f"{request.method} {request.uri}"
    if with_id and request.request_id:
        label += f" [{request.request_id[:8]}]"
    arrows = [FlowArrow(request.first_frame, request.first_ts, source, target, label,
                        "request")]
    if request.response_frame is not None:
        answer = str(request.status) + (f" {request.served_by}" if request.served_by else "")
        arrows.append(FlowArrow(request.response_frame, request.response_ts, target, source,
                                answer, "response", failed=request.status >= 500))
    return arrows
