"""The analysis result: plain data, with one JSON form for scripts and CI."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from lab.analysis.rotation import RotationBreak
from lab.analysis.timing import ResponseTimes


@dataclass
class FlowArrow:
    """One message in the flow diagram, from one column to another."""

    frame: int
    ts: float
    source: str  # column name
    target: str
    label: str
    kind: str  # "request" or "response"
    failed: bool = False  # a 5xx or missing response
    request: str = ""  # the request it is or answers: "[X-Request-ID prefix]" or "#frame"

    @property
    def note(self) -> str:
        """The message in words, naming its request (a response: the one it answers)."""
        if self.kind == "response":
            return f"{self.request} answered: {self.label}"
        return f"{self.request} {self.label}"


@dataclass
class Analysis:
    path: str
    capture_format: str
    link_types: list[str]
    packets: int
    tcp_segments: int
    connections: int
    retransmissions: int  # segments whose bytes were already seen, ignored
    truncated: str  # what was damaged at the end of the file; empty if nothing
    balancer: str  # name (or address) of the balancer
    balancer_address: str
    client_requests: int  # client→balancer requests
    requests: int  # balancer→app requests
    upstream_counts: dict[str, int]  # backend -> requests, in upstream order
    upstream_order: list[str]
    order_source: str  # "given", "inferred" (best cycle) or "first appearance"
    strict_rotation: bool
    break_count: int  # places where the rotation broke
    breaks: list[RotationBreak]  # the first of them (rotation.FIRST_BREAKS)
    spread: int  # max - min requests per backend
    traffic: str  # "sequential" or "concurrent"
    traffic_source: str  # "given" or "detected"
    pairing: str  # "x-request-id", "method+uri+time", "mixed" or "none"
    pairing_counts: dict[str, int]
    paired: int
    unmatched_client: int
    unmatched_upstream: int
    unmatched_examples: list[str]
    retries: int
    request_ids: str  # upstream requests with X-Request-ID: "all", "some" or "none"
    response_times: dict[str, ResponseTimes | None]
    statuses: dict[str, dict[str, int]]  # "client"/"upstream" -> status -> count
    verdict: str  # "pass" or "fail"
    reasons: list[str]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    columns: list[tuple[str, str]] = field(default_factory=list)  # flow (name, address)
    flow: list[FlowArrow] = field(default_factory=list)  # first exchanges, in frame order
    flow_exchanges: int = 0  # exchanges the flow shows
    flow_asked: int = 0  # exchanges asked for (flow_limit)

    def flow_title(self) -> str:
        """What the flow shows, counted as it was asked: exchanges, not messages."""
        if self.flow_exchanges < self.flow_asked:
            return (f"all {self.flow_exchanges} exchanges ({len(self.flow)} messages; "
                    f"{self.flow_asked} asked)")
        return f"the first {self.flow_exchanges} exchanges ({len(self.flow)} messages)"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict:
        return {
            "capture": self.path,
            "format": self.capture_format,
            "link_type": ", ".join(self.link_types),
            "packets": self.packets,
            "tcp_segments": self.tcp_segments,
            "connections": self.connections,
            "retransmissions": self.retransmissions,
            "truncated": bool(self.truncated),
            "truncation": self.truncated,
            "balancer": {"name": self.balancer, "address": self.balancer_address},
            "client_requests": self.client_requests,
            "requests": self.requests,
            "upstream_counts": dict(self.upstream_counts),
            "round_robin": {
                "strict": self.strict_rotation,
                "breaks": self.break_count,
                "first_breaks": [asdict(b) for b in self.breaks],
                "order": list(self.upstream_order),
                "order_source": self.order_source,
                "spread": self.spread,
                "balanced": self.spread <= 1,
            },
            "traffic": self.traffic,
            "traffic_source": self.traffic_source,
            "pairing": {"method": self.pairing, "paired": self.paired,
                        "by": dict(self.pairing_counts)},
            "unmatched": {"client": self.unmatched_client,
                          "upstream": self.unmatched_upstream,
                          "examples": list(self.unmatched_examples)},
            "retries": self.retries,
            "request_ids": self.request_ids,
            "response_times_ms": {
                name: (asdict(times) if times else None)
                for name, times in self.response_times.items()
            },
            "statuses": self.statuses,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)
