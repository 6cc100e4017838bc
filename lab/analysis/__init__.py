"""Packet-capture analyser: did nginx spread the lab's requests round-robin?

    from lab.analysis import analyse
    result = analyse("captures/run.pcap", names={...}, upstream_order=["app1", "app2"])
    print(result.verdict, result.to_json())

Command line: ``python -m lab.analysis PCAP [--json] [--flow N] [--png FILE]``.
"""

from lab.analysis.analyse import analyse
from lab.analysis.errors import CaptureError
from lab.analysis.result import Analysis

__all__ = ["Analysis", "CaptureError", "analyse"]
