"""Charts as inline SVG, drawn on the server: the report needs no script, font or network to be read.

Every text is escaped. Colours come from a small palette that stays distinguishable in greyscale
print (solid vs dashed lines alternate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22")
W, H = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 160, 28, 40


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def _svg(body: str, title: str, height: int = H) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="100%" role="img" '
            f'aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>'
            f'<text x="{LEFT}" y="16" class="chart-title">{escape(title)}</text>{body}</svg>')


def line_chart(
    labels: Sequence[str], series: Mapping[str, Sequence[float | None]], *, title: str, y_label: str = "",
    percent: bool = False,
) -> str:
    """One line per series over ``labels`` (days); ``None`` points (suppressed) leave a gap."""
    values = [v for s in series.values() for v in s if v is not None]
    if not labels or not values:
        return _svg(f'<text x="{LEFT}" y="{H // 2}">no data</text>', title)
    top = max(values) * 1.1 or 1.0
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    n = len(labels)

    def x(i: int) -> float:
        return LEFT + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return TOP + ph - ph * v / top

    parts = [f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{LEFT + pw}" y2="{TOP + ph}" class="axis"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" class="axis"/>']
    for k in range(5):
        tick = top * k / 4
        label = f"{tick:.0%}" if percent else _fmt(tick)
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" class="tick">{label}</text>')
    step = max(1, n // 8)
    for i in range(0, n, step):
        parts.append(f'<text x="{x(i):.1f}" y="{TOP + ph + 16}" text-anchor="middle" class="tick">'
                     f'{escape(labels[i])}</text>')
    if y_label:
        parts.append(f'<text x="12" y="{TOP + ph / 2}" transform="rotate(-90 12 {TOP + ph / 2})" '
                     f'text-anchor="middle" class="tick">{escape(y_label)}</text>')
    for k, (name, s) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if (k // len(PALETTE)) % 2 or k % 2 else ""
        segment: list[str] = []
        runs: list[list[str]] = [segment]
        for i, v in enumerate(s):
            if v is None:
                segment = []
                runs.append(segment)
                continue
            segment.append(f"{x(i):.1f},{y(v):.1f}")
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                             f'stroke-width="2"{dash}/>')
            elif run:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
        ly = TOP + 14 * k
        parts.append(f'<line x1="{W - RIGHT + 10}" y1="{ly}" x2="{W - RIGHT + 30}" y2="{ly}" stroke="{colour}" '
                     f'stroke-width="2"{dash}/><text x="{W - RIGHT + 34}" y="{ly + 4}" class="legend">'
                     f'{escape(name)}</text>')
    return _svg("".join(parts), title)


def bar_chart(items: Sequence[tuple[str, float | None]], *, title: str, warning: float | None = None,
              alert: float | None = None) -> str:
    """Horizontal bars (PSI per feature) with warning and alert lines; ``None`` is shown as suppressed."""
    row = 22
    height = TOP + BOTTOM + row * max(len(items), 1)
    values = [v for _, v in items if v is not None] + [alert or 0.0, warning or 0.0]
    top = max(values) * 1.1 or 1.0
    label_w = 190
    pw = W - label_w - 60

    def x(v: float) -> float:
        return label_w + pw * v / top

    parts = []
    for i, (label, v) in enumerate(items):
        yy = TOP + i * row
        parts.append(f'<text x="{label_w - 8}" y="{yy + 15}" text-anchor="end" class="tick">{escape(label)}</text>')
        if v is None:
            parts.append(f'<text x="{label_w + 4}" y="{yy + 15}" class="tick">suppressed (too few patients)</text>')
            continue
        cls = "bar-alert" if alert is not None and v >= alert else "bar-warn" if warning is not None and \
            v >= warning else "bar-ok"
        parts.append(f'<rect x="{label_w}" y="{yy + 4}" width="{max(x(v) - label_w, 1):.1f}" height="{row - 8}" '
                     f'class="{cls}"/><text x="{x(v) + 4:.1f}" y="{yy + 15}" class="tick">{_fmt(v)}</text>')
    bottom = TOP + row * max(len(items), 1)
    for level, cls, name in ((warning, "line-warn", "warning"), (alert, "line-alert", "alert")):
        if level is not None:
            parts.append(f'<line x1="{x(level):.1f}" y1="{TOP}" x2="{x(level):.1f}" y2="{bottom}" class="{cls}"/>'
                         f'<text x="{x(level) + 3:.1f}" y="{bottom + 14}" class="tick">{name} {_fmt(level)}</text>')
    return _svg("".join(parts), title, height)


@dataclass(frozen=True, slots=True)
class ForestRow:
    label: str
    value: float | None
    low: float | None
    high: float | None
    flagged: bool = False


def forest_plot(rows: Sequence[ForestRow], *, title: str, unit: str = "", percent: bool = False) -> str:
    """Differences from control with their confidence intervals; the zero line is "no difference"."""
    row = 24
    height = TOP + BOTTOM + row * max(len(rows), 1)
    shown = [r for r in rows if r.value is not None and r.low is not None and r.high is not None]
    span = max([abs(v) for r in shown for v in (r.low, r.high) if v is not None] or [1.0]) * 1.15
    label_w = 230
    pw = W - label_w - 70

    def x(v: float) -> float:
        return label_w + pw * (v + span) / (2 * span)

    def fmt(v: float) -> str:
        return f"{v:+.1%}" if percent else f"{v:+.3g}{unit}"

    bottom = TOP + row * max(len(rows), 1)
    parts = [f'<line x1="{x(0):.1f}" y1="{TOP}" x2="{x(0):.1f}" y2="{bottom}" class="axis"/>',
             f'<text x="{x(-span):.1f}" y="{bottom + 14}" class="tick">{fmt(-span)}</text>',
             f'<text x="{x(span):.1f}" y="{bottom + 14}" text-anchor="end" class="tick">{fmt(span)}</text>']
    for i, r in enumerate(rows):
        yy = TOP + i * row + row / 2
        parts.append(f'<text x="{label_w - 8}" y="{yy + 4:.1f}" text-anchor="end" class="tick">'
                     f'{escape(r.label)}</text>')
        if r.value is None or r.low is None or r.high is None:
            parts.append(f'<text x="{label_w + 4}" y="{yy + 4:.1f}" class="tick">suppressed or not estimable</text>')
            continue
        cls = "ci-harm" if r.flagged else "ci"
        parts.append(f'<line x1="{x(r.low):.1f}" y1="{yy:.1f}" x2="{x(r.high):.1f}" y2="{yy:.1f}" class="{cls}"/>'
                     f'<circle cx="{x(r.value):.1f}" cy="{yy:.1f}" r="4" class="{cls}-dot"/>'
                     f'<text x="{W - 66}" y="{yy + 4:.1f}" class="tick">{fmt(r.value)}</text>')
    return _svg("".join(parts), title, height)
