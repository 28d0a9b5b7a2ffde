"""Why a patient got the nudges they got: the latest build decision, explained like ``rules explain``.

For each ready nudge, every score component's value, weight and contribution (value × weight),
their sum (the expected score), and whether the exploration floor chose it; for the winner against
the runner-up, the components on which they differ, the winner's lead first; and the candidates
that did not make it, with the rules that blocked or sent them to review and the coded reasons the
rest were dropped. Works from the stored decision record alone, by surrogate id.

The components explain the *expected* score. The bandit ranks by a Thompson draw around it (the
recorded ``score``), and the exploration floor now and then puts a permitted nudge first whatever
its score (``explored``, score null): so a nudge may win with the lower expected score.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import BuildCycleRow, PatientDecisionRow
from nudge_engine.domain.errors import NotFound


def _contributions(pick: dict[str, Any]) -> dict[str, dict[str, float]]:
    parts = (pick.get("components") or {}).get("components") or {}
    out = {}
    for name, part in parts.items():
        value, weight = float(part.get("value") or 0.0), float(part.get("weight") or 0.0)
        out[name] = {"value": round(value, 6), "weight": weight, "contribution": round(value * weight, 6)}
    return out


def explain_decision(session: Session, patient_id: str) -> dict[str, Any]:
    """The latest decision for ``patient_id`` (a surrogate id) with the reasons behind it."""
    row = session.execute(
        select(PatientDecisionRow, BuildCycleRow.as_of)
        .join(BuildCycleRow, BuildCycleRow.id == PatientDecisionRow.cycle_id, isouter=True)
        .where(PatientDecisionRow.patient_id == patient_id)
        .order_by(PatientDecisionRow.created_at.desc())
    ).first()
    if row is None:
        raise NotFound(f"no build decision for patient {patient_id}")
    decision, as_of = row
    chosen = []
    for p in decision.chosen:
        parts = _contributions(p)
        chosen.append({
            "nudge": p["nudge"], "score": p.get("score"), "propensity": p.get("propensity"),
            "explored": bool((p.get("components") or {}).get("explored")), "caution": p.get("caution", []),
            "expected": round(sum(c["contribution"] for c in parts.values()), 6), "components": parts,
        })
    why: list[dict[str, Any]] = []
    if len(chosen) >= 2:
        winner, runner_up = chosen[0]["components"], chosen[1]["components"]
        for name in sorted(set(winner) | set(runner_up)):
            w = winner.get(name, {}).get("contribution", 0.0)
            r = runner_up.get(name, {}).get("contribution", 0.0)
            if w != r:
                why.append({"component": name, "winner": w, "runner_up": r, "difference": round(w - r, 6)})
        why.sort(key=lambda item: -item["difference"])
    return {
        "patient": patient_id,
        "cycle": decision.cycle_id,
        "as_of": as_of.isoformat() if as_of else None,
        "outcome": decision.outcome,
        "model_version": decision.model_version,
        "ruleset_digest": decision.ruleset_digest,
        "segments": decision.segments,
        "stage": decision.stage,
        "experiments": decision.experiments,
        "held_out": decision.held_out,
        "chosen": chosen,
        "why_the_winner": why,
        "review": [{"nudge": f["nudge"], "rules": [x["rule"] for x in f.get("fired", [])]} for f in decision.review],
        "blocked": [{"nudge": f["nudge"], "rules": [x["rule"] for x in f.get("fired", [])]} for f in decision.blocked],
        "dropped": decision.dropped,
    }
