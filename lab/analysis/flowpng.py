"""The flow diagram as a PNG, drawn with matplotlib's Agg canvas (no display needed)."""

from __future__ import annotations

import os

from lab.analysis.result import Analysis

COLOURS = {"request": "#1f6fb2", "response": "#2e8b57", "failed": "#c0392b"}


def write_flow_png(result: Analysis, path: str | os.PathLike) -> None:
    """Draw the exchanges the analysis kept (``analyse(..., flow_limit=N)``) into ``path``."""
    from matplotlib.figure import Figure  # imported here: it costs ~0.5 s

    arrows = result.flow
    columns = result.columns
    figure = Figure(figsize=(1.5 + 2.0 * len(columns), 1.6 + 0.32 * len(arrows)))
    axes = figure.subplots()
    _draw_columns(axes, columns, len(arrows))
    start = arrows[0].ts if arrows else 0.0
    where = {name: i for i, (name, _) in enumerate(columns)}
    for row, arrow in enumerate(arrows):
        _draw_arrow(axes, row, where[arrow.source], where[arrow.target], arrow, start)
    axes.set_xlim(-1.2, len(columns) - 0.4)
    axes.set_ylim(len(arrows) + 0.2, -1.6)
    axes.axis("off")
    axes.set_title(f"{os.path.basename(result.path)}: {result.flow_title()}",
                   fontsize=10, loc="left")
    figure.savefig(os.fspath(path), dpi=110, bbox_inches="tight")


def _draw_columns(axes, columns: list[tuple[str, str]], rows: int) -> None:
    for i, (name, address) in enumerate(columns):
        axes.plot([i, i], [-0.6, rows + 0.2], color="0.65", linewidth=1)
        axes.text(i, -0.7, f"{name}\n{address}", ha="center", va="bottom", fontsize=8,
                  fontweight="bold")


def _draw_arrow(axes, row: int, source: int, target: int, arrow, start: float) -> None:
    colour = COLOURS["failed"] if arrow.failed else COLOURS[arrow.kind]
    axes.annotate("", xy=(target, row), xytext=(source, row),
                  arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.2})
    axes.text((source + target) / 2, row - 0.08, arrow.note[:48], ha="center",
              va="bottom", fontsize=7, color=colour)
    axes.text(-0.7, row, f"{arrow.ts - start:.6f}  #{arrow.frame}", ha="right",
              va="center", fontsize=7, color="0.35")
