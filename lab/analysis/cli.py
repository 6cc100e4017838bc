"""Command line: python -m lab.analysis PCAP [--json] [--flow N] [--png FILE] [...].

Exit status: 0 verdict pass, 1 verdict fail, 2 unusable input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager

from lab.analysis.analyse import analyse
from lab.analysis.errors import CaptureError
from lab.errors import LabError

DEFAULT_PNG_EXCHANGES = 20
FLOW_WIDTH = 100  # render.FLOW_WIDTH (not imported: --json does without rich)
MIN_WIDTH = 72
IMAGE_SUFFIX = ".png"
EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lab.analysis",
        description="Check from a capture taken on the balancer that nginx spread the "
                    "requests round-robin over the app servers.",
    )
    parser.add_argument("pcap", help="pcap or pcapng file (tcpdump -w, Wireshark)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--flow", type=int, default=0, metavar="N",
                        help="show a flow diagram of the first N exchanges")
    parser.add_argument("--png", metavar="FILE",
                        help=f"draw the flow diagram into FILE (first --flow N exchanges, "
                             f"default {DEFAULT_PNG_EXCHANGES})")
    parser.add_argument("--width", type=int, default=FLOW_WIDTH, metavar="COLUMNS",
                        help=f"fit the text flow into COLUMNS (default {FLOW_WIDTH})")
    parser.add_argument("--upstream-list", metavar="FILE",
                        help="write the backend (address<TAB>port) of every upstream "
                             "request to FILE, in order (as tshark -T fields -e ip.dst "
                             "-e tcp.dstport would)")
    parser.add_argument("--topology", metavar="YAML",
                        help="name hosts and take the app order from this topology file")
    traffic = parser.add_mutually_exclusive_group()
    traffic.add_argument("--sequential", dest="traffic", action="store_const",
                         const="sequential", help="the traffic was sequential: require a "
                                                  "strict rotation")
    traffic.add_argument("--concurrent", dest="traffic", action="store_const",
                         const="concurrent", help="the traffic was concurrent: require "
                                                  "balanced counts")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.flow < 0:
        return _refuse("--flow N needs N >= 0")
    if args.width < MIN_WIDTH:
        return _refuse(f"--width {args.width}: the flow needs at least {MIN_WIDTH} columns")
    if args.png and not args.png.lower().endswith(IMAGE_SUFFIX):
        return _refuse(f"--png {args.png}: the flow diagram is a PNG image: give a file "
                       f"name ending in {IMAGE_SUFFIX}")
    flow_limit = args.flow or (DEFAULT_PNG_EXCHANGES if args.png else 0)
    try:
        names, order = _topology(args.topology) if args.topology else (None, None)
        with _upstream_list(args.upstream_list) as upstream_log:
            result = analyse(args.pcap, names=names, upstream_order=order,
                             traffic=args.traffic, flow_limit=flow_limit,
                             upstream_log=upstream_log)
        if args.png:
            _write_png(result, args.png)
    except LabError as err:  # CaptureError, or a bad topology file
        return _refuse(str(err))
    if args.json:
        print(result.to_json())
    else:
        from rich.console import Console  # imported here: --json does without it

        from lab.analysis.render import render_report

        render_report(result, Console(), flow=args.flow, width=args.width)
    return EXIT_PASS if result.passed else EXIT_FAIL


@contextmanager
def _upstream_list(path: str | None):
    if path is None:
        yield None
        return
    try:
        file = open(path, "w", encoding="ascii")  # noqa: SIM115 - closed below
    except OSError as err:
        raise CaptureError(f"cannot write the upstream list to {path}: {err.strerror}") \
            from None
    with file:
        yield file


def _refuse(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _topology(path: str) -> tuple[dict[str, str], list[str]]:
    from lab import topology

    topo = topology.load(path)
    return {node.address: node.name for node in topo.nodes}, [app.name for app in topo.apps]


def _write_png(result, path: str) -> None:
    from lab.analysis.flowpng import write_flow_png

    try:
        write_flow_png(result, path)
    except OSError as err:
        raise CaptureError(f"cannot write the flow diagram to {path}: {err.strerror}: "
                           "give a writable path ending in .png") from None
