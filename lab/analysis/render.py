"""Human output: the summary tables and a Wireshark-like flow diagram, with rich."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from lab.analysis.result import Analysis, FlowArrow

FLOW_WIDTH = 100  # columns of the text flow: a projector, or a terminal split in two
TIME_WIDTH = 12  # "  0.001234  "
MIN_COLUMN, MAX_COLUMN = 6, 24
NOTE_ROOM = 40  # the text after the arrows: frame, message, request id
SHOWN_BREAKS = 5
STYLE = {"request": "cyan", "response": "green", "failed": "bold red"}


def render_report(result: Analysis, console: Console, flow: int = 0,
                  width: int = FLOW_WIDTH) -> None:
    console.print(summary_table(result))
    console.print(backend_table(result))
    if result.breaks:
        console.print(breaks_table(result))
    if flow and result.flow:
        console.print(Text(f"flow: {result.flow_title()}", style="bold"))
        console.print(flow_text(result, width), soft_wrap=True)
    console.print(verdict_text(result))
    for warning in result.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    for note in result.notes:
        console.print(Text(f"note: {note}", style="dim"))


def summary_table(result: Analysis) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    truncated = f", TRUNCATED: {result.truncated}" if result.truncated else ""
    table.add_row("capture", f"{result.path} ({result.capture_format}, "
                             f"{', '.join(result.link_types)}{truncated})")
    table.add_row("read", f"{result.packets} packets, {result.tcp_segments} TCP segments, "
                          f"{result.connections} connections, {result.retransmissions} "
                          "retransmitted segments ignored")
    table.add_row("balancer", f"{result.balancer} ({result.balancer_address}): "
                              f"{result.client_requests} client requests, {result.requests} "
                              "upstream requests")
    table.add_row("traffic", f"{result.traffic} ({result.traffic_source})")
    table.add_row("pairing", f"{result.pairing}: {result.paired} paired, "
                             f"{result.unmatched_client} client and "
                             f"{result.unmatched_upstream} upstream unmatched")
    table.add_row("X-Request-ID", f"on {result.request_ids} upstream requests")
    strict = "strict" if result.strict_rotation else f"{result.break_count} breaks"
    table.add_row("rotation", f"{' → '.join(result.upstream_order)} "
                              f"({result.order_source}): {strict}")
    return table


def backend_table(result: Analysis) -> Table:
    table = Table(title="upstream requests per backend", title_justify="left")
    for header in ("backend", "requests", "share", "p50 ms", "p90 ms", "max ms"):
        table.add_column(header, justify="left" if header == "backend" else "right")
    total = max(result.requests, 1)
    for name, count in result.upstream_counts.items():
        times = result.response_times.get(name)
        cells = [f"{times.p50_ms:.1f}", f"{times.p90_ms:.1f}", f"{times.max_ms:.1f}"] \
            if times else ["-", "-", "-"]
        table.add_row(name, str(count), f"{100 * count / total:.1f}%", *cells)
    table.caption = f"max − min = {result.spread}"
    return table


def breaks_table(result: Analysis) -> Table:
    shown = result.breaks[:SHOWN_BREAKS]
    table = Table(title=f"rotation breaks: {result.break_count} (first {len(shown)})",
                  title_justify="left")
    for header in ("request #", "frame", "expected", "got"):
        table.add_column(header)
    for brk in shown:
        table.add_row(str(brk.position), str(brk.frame), brk.expected, brk.got)
    return table


def verdict_text(result: Analysis) -> Group:
    style = "bold green" if result.passed else "bold red"
    lines = [Text(f"verdict: {result.verdict.upper()}", style=style)]
    lines += [Text(f"  {reason}") for reason in result.reasons]
    return Group(*lines)


# -- flow diagram ----------------------------------------------------------------------


def flow_text(result: Analysis, width: int = FLOW_WIDTH) -> Text:
    """The flow diagram as text, at most ``width`` columns: one column per host, one arrow
    per message, then the frame and the message (every one naming its request).

    It shows the exchanges the analysis kept (``analyse(..., flow_limit=N)``).
    """
    names = [name for name, _ in result.columns]
    column = column_width(width, len(names))
    note_room = width - TIME_WIDTH - column * len(names) - 1
    arrows = result.flow
    start = arrows[0].ts if arrows else 0.0
    text = Text()
    text.append(_centred_row(names, column, "time (s)"), style="bold")
    text.append(_centred_row([_tail(address, column - 1) for _, address in result.columns],
                             column, ""), style="dim")
    for arrow in arrows:
        text.append(f"{arrow.ts - start:>10.6f}  ")
        style = STYLE["failed"] if arrow.failed else STYLE[arrow.kind]
        text.append(_arrow_line(names, arrow, column), style=style)
        text.append(" " + _fit(f"#{arrow.frame} {arrow.note}", note_room) + "\n",
                    style=style)
    return text


def column_width(width: int, columns: int) -> int:
    """Each host's column: what is left after the time and the notes, within bounds."""
    room = (width - TIME_WIDTH - NOTE_ROOM - 1) // max(columns, 1)
    return max(MIN_COLUMN, min(MAX_COLUMN, room))


def _centred_row(cells: list[str], width: int, first: str) -> str:
    return f"{first:>10}  " + "".join(_fit(cell, width - 1).center(width) for cell in cells) + "\n"


def _tail(address: str, room: int) -> str:
    """The end of an address is what tells lab hosts apart: …56.11."""
    if len(address) > room and address.count(":") == 1:
        address = address.partition(":")[0]  # the port is in the header's name anyway
    return address if len(address) <= room else "…" + address[-(room - 1):]


def _fit(label: str, room: int) -> str:
    return label if len(label) <= room else label[: max(room - 1, 0)] + "…"


def _arrow_line(names: list[str], arrow: FlowArrow, width: int) -> str:
    line = [" "] * (width * len(names))
    centres = {name: i * width + width // 2 for i, name in enumerate(names)}
    for centre in centres.values():
        line[centre] = "│"
    source, target = centres[arrow.source], centres[arrow.target]
    left, right = min(source, target), max(source, target)
    for i in range(left + 1, right):
        line[i] = "─"
    if target > source:
        line[right - 1] = "▶"
    else:
        line[left + 1] = "◀"
    return "".join(line)
