"""Write ``report.html`` (inline SVG charts, inline CSS: readable offline) and ``report.json`` into a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from nudge_engine.reporting.charts import ForestRow, bar_chart, forest_plot, line_chart

TOP_RULES = 8


def _safe(svg: str) -> Markup:
    """SVG from :mod:`charts`, which escapes every text it draws, so it may go into the page as is."""
    return Markup(svg)  # noqa: S704 - every label and title is escaped in charts.py


def _environment() -> Environment:
    return Environment(loader=PackageLoader("nudge_engine.reporting", "templates"),
                       autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)


def _top(series: dict[str, list[float | None]], k: int = TOP_RULES) -> dict[str, list[float | None]]:
    def weight(values: list[float | None]) -> float:
        return sum(v for v in values if v is not None)

    return dict(sorted(series.items(), key=lambda kv: -weight(kv[1]))[:k])


def _est(cell: dict[str, Any], key: str) -> tuple[float | None, float | None, float | None]:
    e = cell.get(key)
    return (e["value"], e["low"], e["high"]) if e else (None, None, None)


def charts(doc: dict[str, Any]) -> dict[str, Any]:
    m = doc["monitoring"]
    t = doc["thresholds"]
    labels = [d[5:] for d in m["days"]]
    drift = [(f"feature: {f['subject']}", f["value"]) for f in m["drift"]["features"]]
    drift += [(f"model score: {f['subject']}", f["value"]) for f in m["drift"]["scores"]]
    out: dict[str, Any] = {
        "block": _safe(line_chart(labels, _top(m["block_rate_by_rule"]), percent=True,
                                   title="Block rate by rule (share of patients built each day)")),
        "review": _safe(line_chart(labels, _top(m["review_rate_by_rule"]), percent=True,
                                    title="Review rate by rule (share of patients built each day)")),
        "drift": _safe(bar_chart(drift, title="Drift: population stability index, current vs reference window",
                                  warning=t["psi_warning"], alert=t["psi_alert"])),
        "backlog": _safe(line_chart(labels, {"pending review items": m["review"]["backlog_by_day"]},
                                     title="Review backlog (pending items at the end of each day)")),
        "experiments": {},
    }
    for exp in doc["experiments"]:
        arms = [c for c in exp["overall"] if c["arm"] != exp["control"]]
        # A no-nudge arm only receives safety-relevant nudges: its completion rate compares nothing.
        completion = [ForestRow(c["arm"], *_est(c, "completion_diff"), flagged=c["harm"]) for c in arms
                      if c["arm"] not in exp["holdout_arms"]]
        activity = [ForestRow(c["arm"], *_est(c, "activity_diff"), flagged=c["harm"]) for c in arms]
        segments = [ForestRow(f"{c['arm']} · {c['segment']}", *_est(c, "completion_diff"), flagged=c["harm"])
                    for c in exp["segments"] if c["arm"] != exp["control"] and c["arm"] not in exp["holdout_arms"]]
        out["experiments"][exp["experiment"]] = {
            "completion": _safe(forest_plot(completion, percent=True,
                                             title=f"{exp['experiment']}: completion per delivered nudge, "
                                                   f"arm minus {exp['control']} ({exp['confidence']:.0%} CI)")),
            "activity": _safe(forest_plot(activity, unit=" min",
                                           title=f"{exp['experiment']}: activity minutes per day, "
                                                 f"arm minus {exp['control']}")),
            "segments": _safe(forest_plot(segments, percent=True,
                                           title=f"{exp['experiment']}: completion by segment, arm minus "
                                                 f"{exp['control']} (red: harm flagged)")),
        }
    return out


def render_html(doc: dict[str, Any]) -> str:
    return _environment().get_template("report.html.j2").render(doc=doc, charts=charts(doc))


def write_report(out: Path, doc: dict[str, Any]) -> tuple[Path, Path]:
    """Write both files (the folder is created); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    html_path, json_path = out / "report.html", out / "report.json"
    json_path.write_text(json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n", encoding="utf-8")
    html_path.write_text(render_html(doc), encoding="utf-8")
    return html_path, json_path
