"""The per-request evaluator: a pure function of (patient context, nudge, compiled rule set, time).

For each rule whose target matches the nudge, its branches are evaluated; the rule's action is the most
severe branch that holds, and the decision is the most severe action over rules (block > review >
caution > deliver). Fail closed: an undefined value makes a branch undefined (three-valued logic) and an
undefined branch answers review; an exception while reading any feature of a targeted rule, or while
evaluating it, makes the rule answer at least review. Failures are logged without patient data and
counted in :data:`FAILURES`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from datetime import datetime

from nudge_engine.domain.context import PatientContext
from nudge_engine.domain.nudge import Nudge
from nudge_engine.guardrails.compiler import CompiledBranch, CompiledRule, CompiledRuleSet, Escalation, Level
from nudge_engine.guardrails.decision import Decision, FiredRule, Outcome
from nudge_engine.guardrails.features import Feature, PatientView, Reading
from nudge_engine.guardrails.logic import Tri
from nudge_engine.guardrails.timewindows import utc
from nudge_engine.logs import get_logger

log = get_logger(__name__)

#: Rules that failed closed in this process, by (rule id, "error" | "undefined").
FAILURES: Counter[tuple[str, str]] = Counter()


def record_failure(rule_id: str, reason: str, detail: str) -> None:
    FAILURES[(rule_id, reason)] += 1
    log.warning("guardrail rule failed closed", rule=rule_id, reason=reason, detail=detail)


def read_safely(feature: Feature, ctx: PatientView, at: datetime) -> tuple[Reading, bool]:
    """A feature's reading; an exception becomes an undefined reading (and True as the second value)."""
    try:
        return feature.read(ctx, at), False
    except Exception as exc:
        return Reading(math.nan, undefined=True, evidence=(f"evaluation error: {exc.__class__.__name__}",)), True


class PatientReads:
    """Each feature of one patient read at most once, at one time; shareable across that patient's nudges."""

    __slots__ = ("at", "cache", "ctx", "errors")

    def __init__(self, ctx: PatientContext, at: datetime) -> None:
        self.ctx = PatientView(ctx)
        self.at = at
        self.cache: dict[str, Reading] = {}
        self.errors: set[str] = set()

    def __call__(self, feature: Feature) -> Reading:
        found = self.cache.get(feature.key)
        if found is None:
            try:
                found = feature.read(self.ctx, self.at)
            except Exception:
                found, _ = read_safely(feature, self.ctx, self.at)
                self.errors.add(feature.key)
            self.cache[feature.key] = found
        return found


def decide(
    ctx: PatientContext,
    nudge: Nudge,
    ruleset: CompiledRuleSet,
    at: datetime,
    *,
    reads: PatientReads | None = None,
    only: Collection[str] | None = None,
) -> Decision:
    """Decide one (patient, nudge) pair at ``at`` (an aware datetime).

    ``reads`` lets a caller deciding many nudges for the same patient and time read each feature once.
    ``only`` restricts the decision to those rule ids (the batch build explains just the rules its
    columnar evaluator fired); by default every rule that targets the nudge is evaluated.
    """
    if reads is None or reads.ctx.ctx is not ctx or reads.at != utc(at):
        reads = PatientReads(ctx, utc(at))
    fired: list[FiredRule] = []
    escalation = Escalation.NONE
    for rule, targeted in ruleset.targeted(nudge):
        if only is not None and rule.id not in only:
            continue
        try:
            result, esc = _rule(rule, targeted, reads)
        except Exception as exc:
            record_failure(rule.id, "error", exc.__class__.__name__)
            result, esc = FiredRule(rule.id, "review", (f"evaluation error: {exc.__class__.__name__}",), failed=True), 0
        if result is not None:
            fired.append(result)
            escalation = max(escalation, esc)
    level = max((Level.OF_ACTION[f.action] for f in fired), default=Level.NONE)
    outcome = Outcome.BLOCK if level == Level.BLOCK else Outcome.REVIEW if level == Level.REVIEW else Outcome.DELIVER
    cautions = tuple(dict.fromkeys(text for f in fired for text in f.caution))
    return Decision(
        decision=outcome,
        caution=cautions,
        escalation=Escalation.NAMES.get(escalation),
        fired=tuple(fired),
        ruleset_version=ruleset.version,
        ruleset_digest=ruleset.digest,
    )


def _rule(
    rule: CompiledRule, targeted: tuple[CompiledBranch, ...], reads: PatientReads
) -> tuple[FiredRule | None, int]:
    for feature in rule.features:  # read them all, so a failing read fails the rule as in the batch
        reads(feature)
    errors = [reads.cache[f.key].evidence for f in rule.features if f.key in reads.errors]
    level = Level.REVIEW if errors else Level.NONE
    escalation = Escalation.NONE
    evidence: list[str] = [e for ev in errors for e in ev]
    reasons: list[str] = []
    cautions: list[str] = []
    for branch in targeted:
        tri, ev = branch.when.scalar(reads) if branch.when is not None else (Tri.TRUE, ())
        if tri is Tri.UNDEFINED:
            level = max(level, Level.REVIEW)
            reasons.extend(ev)
            continue
        if tri is Tri.FALSE:
            continue
        evidence.extend(ev)
        if branch.caution is not None:
            cautions.append(branch.caution)
        level = max(level, branch.level)
        if branch.escalation:
            esc = branch.escalate_when.scalar(reads)[0] if branch.escalate_when is not None else Tri.TRUE
            if esc is not Tri.FALSE:  # an undefined escalation test escalates (fail closed)
                escalation = max(escalation, branch.escalation)
    if level == Level.NONE:
        return None, Escalation.NONE
    if errors:
        record_failure(rule.id, "error", "feature read failed")
    elif reasons:
        record_failure(rule.id, "undefined", "undefined value")
    action = Level.NAMES[level]
    failed = level == Level.REVIEW and (bool(errors) or (bool(reasons) and not evidence))
    return (
        FiredRule(
            rule.id, action, tuple(dict.fromkeys(evidence + reasons)),
            caution=tuple(cautions) if level == Level.CAUTION else (), failed=failed,
        ),
        escalation,
    )
