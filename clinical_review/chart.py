"""Decisions per rule over time as a small-multiples bar chart, drawn server-side as SVG shapes."""

from __future__ import annotations

from dataclasses import dataclass

from clinical_review.model import Dashboard

BAR_W = 14
GAP = 4
ROW_H = 40
LABEL_W = 70


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    y: int
    height: int
    kind: str  # approved | rejected | expired
    count: int
    day: str


@dataclass(frozen=True, slots=True)
class ChartRow:
    rule: str
    y: int
    bars: tuple[Bar, ...]
    total: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    rows: tuple[ChartRow, ...]
    days: tuple[str, ...]
    peak: int
    label_w: int = LABEL_W
    bar_w: int = BAR_W
    row_h: int = ROW_H


def rule_chart(board: Dashboard) -> Chart:
    """One row per rule, one stacked bar per day (approved, rejected, expired), on a shared scale."""
    peak = max((c.approved + c.rejected + c.expired for cells in board.per_rule.values() for c in cells), default=0)
    scale = (ROW_H - 8) / peak if peak else 0.0
    rows: list[ChartRow] = []
    for i, (rule, cells) in enumerate(board.per_rule.items()):
        base = (i + 1) * ROW_H
        bars: list[Bar] = []
        for j, cell in enumerate(cells):
            x = LABEL_W + j * (BAR_W + GAP)
            top = base
            for kind, count in (("approved", cell.approved), ("rejected", cell.rejected), ("expired", cell.expired)):
                if count:
                    h = max(1, round(count * scale))
                    top -= h
                    bars.append(Bar(x, top, h, kind, count, cell.day))
        rows.append(ChartRow(rule, base, tuple(bars),
                             sum(c.approved + c.rejected + c.expired for c in cells)))
    width = LABEL_W + len(board.days) * (BAR_W + GAP) + 50
    return Chart(width, (len(rows) + 1) * ROW_H, tuple(rows), board.days, peak)
