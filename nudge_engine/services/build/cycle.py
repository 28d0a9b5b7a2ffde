"""Run a build cycle: features -> segments -> candidates -> ranking -> guardrails -> ready queue.

A cycle is split into shards of patients. Each shard is claimed, planned and written in **one**
transaction with its audit records (see :mod:`nudge_engine.adapters.shards`), so:

- running ``build`` again while a cycle is unfinished (a crash, a kill) resumes that cycle;
- two workers at once (processes or machines on PostgreSQL) build disjoint shards;
- a patient is built exactly once per cycle, and the ready queue is reconciled, not appended.

Randomness (exploration) is seeded from the cycle's day and the shard, so two builds of the same
inputs on the same day choose the same nudges and leave the ready queue unchanged.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nudge_engine.adapters.orm import BuildCycleRow, PatientRow
from nudge_engine.adapters.shards import (
    ShardClaim,
    claim_shard,
    finish_cycle_if_done,
    finish_shard,
    start_cycle,
    unfinished_cycle,
)
from nudge_engine.adapters.unit_of_work import UnitOfWork
from nudge_engine.audit.trail import AuditTrail
from nudge_engine.domain.errors import NotFound
from nudge_engine.guardrails.columns import NudgeColumns
from nudge_engine.guardrails.compiler import CompiledRuleSet
from nudge_engine.logs import get_logger
from nudge_engine.personalization.candidates import REASONS, DropReason
from nudge_engine.personalization.catalog import Catalog, catalog_digest
from nudge_engine.personalization.pipeline import event_windows, plan_batch
from nudge_engine.personalization.plan import BatchPlan
from nudge_engine.personalization.ranking import RankingPolicy
from nudge_engine.personalization.segments import SegmentModel
from nudge_engine.services.build.guarding import ShardGuardrails
from nudge_engine.services.build.loading import LoadedShard, load_shard
from nudge_engine.services.build.outcomes import ChosenNudge, FlaggedNudge, PatientOutcome
from nudge_engine.services.build.writer import QueuePolicy, write_outcomes

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    shard_size: int = 2000  # patients per shard (and per transaction)
    per_patient: int = 2  # ready nudges per patient
    review_per_patient: int = 1  # review items opened per patient and cycle at most
    seed: int = 20250601


@dataclass
class CycleSummary:
    cycle_id: str
    resumed: bool
    shards_built: int = 0
    patients: int = 0
    ready_inserted: int = 0
    ready_kept: int = 0
    ready_superseded: int = 0
    review_created: int = 0
    review_auto_approved: int = 0
    patients_without_nudge: int = 0
    blocked_by_rule: Counter[str] = field(default_factory=Counter)
    review_by_rule: Counter[str] = field(default_factory=Counter)
    caution_by_rule: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    finished: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cycle_id": self.cycle_id, "resumed": self.resumed, "finished": self.finished,
            "shards_built": self.shards_built, "patients": self.patients,
            "ready": {"inserted": self.ready_inserted, "kept": self.ready_kept, "superseded": self.ready_superseded},
            "review": {"created": self.review_created, "auto_approved": self.review_auto_approved},
            "patients_without_nudge": self.patients_without_nudge,
            "blocked_by_rule": dict(sorted(self.blocked_by_rule.items())),
            "review_by_rule": dict(sorted(self.review_by_rule.items())),
            "caution_by_rule": dict(sorted(self.caution_by_rule.items())),
            "dropped_by_reason": dict(sorted(self.dropped.items())),
            "seconds": round(self.seconds, 3),
        }

    def counts(self) -> dict[str, int]:
        return {"patients": self.patients, "ready_inserted": self.ready_inserted, "review_created": self.review_created,
                "patients_without_nudge": self.patients_without_nudge}


class BuildCycle:
    """Builds every patient once per cycle; one instance per worker process."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        audit: AuditTrail,
        ruleset: CompiledRuleSet,
        catalog: Catalog,
        segments: SegmentModel,
        policy: RankingPolicy,
        clock: Callable[[], datetime],
        worker: str,
        options: BuildOptions = BuildOptions(),
        queue: QueuePolicy | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.audit = audit
        self.ruleset = ruleset
        self.catalog = catalog
        self.segments = segments
        self.policy = policy
        self.clock = clock
        self.worker = worker
        self.options = options
        self.queue = queue or QueuePolicy()
        self.nudges = catalog.nudges()
        self.nudge_columns = NudgeColumns.from_nudges(self.nudges, ruleset)
        self.catalog_digest = catalog_digest(catalog)
        self.windows = event_windows(catalog, segments)

    # ------------------------------------------------------------------ cycle
    def start_or_resume(self) -> tuple[str, datetime, bool]:
        """The unfinished cycle if there is one (resume), else a new one sized to the patient count."""
        now = self.clock()
        with self.uow_factory() as uow:
            running = unfinished_cycle(uow.session)
            if running is not None:
                return running.id, running.as_of, True
            patients = uow.session.scalar(select(func.count()).select_from(PatientRow)) or 0
            shards = max(1, math.ceil(patients / self.options.shard_size))
            cycle_id = start_cycle(
                uow.session, now=now, as_of=now, ruleset_digest=self.ruleset.digest,
                catalog_digest=self.catalog_digest, model_version=self.policy.version, shard_count=shards,
            )
            uow.commit()
        return cycle_id, now, False

    def run(
        self, *, progress: Callable[[int, int], None] | None = None, join: str | None = None
    ) -> CycleSummary:
        """Build shards until none is left; ``progress(done, total)`` after each shard.

        ``join`` names a cycle to help build (another worker started it); by default the unfinished
        cycle is resumed, or a new one started.
        """
        started = time.perf_counter()
        cycle_id, as_of, resumed = self._join(join) if join else self.start_or_resume()
        summary = CycleSummary(cycle_id, resumed)
        log.info("build_cycle_started", cycle=cycle_id, resumed=resumed, worker=self.worker)
        while self._build_one_shard(cycle_id, as_of, summary):
            if progress:
                progress(*self._shard_progress(cycle_id))
        with self.uow_factory() as uow:
            summary.finished = finish_cycle_if_done(uow.session, cycle_id=cycle_id, now=self.clock(),
                                                    counts=summary.counts())
            uow.commit()
        summary.seconds = time.perf_counter() - started
        log.info("build_cycle_done", cycle=cycle_id, finished=summary.finished, patients=summary.patients,
                 shards=summary.shards_built, seconds=round(summary.seconds, 2))
        return summary

    def _join(self, cycle_id: str) -> tuple[str, datetime, bool]:
        with self.uow_factory() as uow:
            as_of = uow.session.scalar(select(BuildCycleRow.as_of).where(BuildCycleRow.id == cycle_id))
        if as_of is None:
            raise NotFound(f"build cycle {cycle_id} does not exist")
        return cycle_id, as_of, True

    def _shard_progress(self, cycle_id: str) -> tuple[int, int]:
        from nudge_engine.adapters.orm import BuildShardRow

        with self.uow_factory() as uow:
            rows = uow.session.execute(
                select(BuildShardRow.status, func.count()).where(BuildShardRow.cycle_id == cycle_id)
                .group_by(BuildShardRow.status)
            ).all()
        by_status = {status: int(n) for status, n in rows}
        return by_status.get("done", 0), sum(by_status.values())

    def _build_one_shard(self, cycle_id: str, as_of: datetime, summary: CycleSummary) -> bool:
        with self.uow_factory() as uow:
            session = uow.session
            claim = claim_shard(session, cycle_id=cycle_id, worker=self.worker, now=self.clock())
            if claim is None:
                return False
            self.build_shard(session, claim, as_of, summary)
            finish_shard(session, claim, now=self.clock())
            uow.commit()
        summary.shards_built += 1
        return True

    # ------------------------------------------------------------------ shard
    def build_shard(self, session: Session, claim: ShardClaim, as_of: datetime, summary: CycleSummary) -> None:
        loaded = load_shard(session, claim, as_of=as_of, catalog=self.catalog, windows=self.windows)
        if not loaded.patient_ids:
            return
        guard = ShardGuardrails(self.ruleset, loaded.contexts, self.nudges, self.nudge_columns, as_of=as_of)
        day = as_of.astimezone(UTC).date().toordinal()
        salt = int(hashlib.sha256(self.policy.version.encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng([self.options.seed, day, salt, claim.shard_count, claim.shard_no])
        plan = plan_batch(
            loaded.batch, self.catalog, self.segments, self.policy, guard, now=as_of, rng=rng,
            per_patient=self.options.per_patient, review_per_patient=self.options.review_per_patient,
        )
        outcomes = self._outcomes(plan, loaded, guard, summary)
        counts = write_outcomes(
            session, outcomes, cycle_id=claim.cycle_id, now=self.clock(), ruleset_digest=self.ruleset.digest,
            model_version=self.policy.version, audit=self.audit, policy=self.queue,
        )
        summary.patients += counts.patients
        summary.ready_inserted += counts.ready_inserted
        summary.ready_kept += counts.ready_kept
        summary.ready_superseded += counts.ready_superseded
        summary.review_created += counts.review_created
        summary.review_auto_approved += counts.review_auto_approved

    def _outcomes(
        self, plan: BatchPlan, loaded: LoadedShard, guard: ShardGuardrails, summary: CycleSummary
    ) -> list[PatientOutcome]:
        ids = plan.nudge_ids
        n = len(loaded.patient_ids)
        chosen: list[list[ChosenNudge]] = [[] for _ in range(n)]
        review: list[list[FlaggedNudge]] = [[] for _ in range(n)]
        blocked: list[list[FlaggedNudge]] = [[] for _ in range(n)]
        dropped: list[dict[str, list[str]]] = [{} for _ in range(n)]
        not_eligible = np.zeros(n, dtype=np.int64)
        order = np.lexsort((plan.chosen_rank, plan.chosen_row))
        for i in order.tolist():
            row, nudge = int(plan.chosen_row[i]), int(plan.chosen_nudge[i])
            fired = guard.evidence(row, nudge) if plan.chosen_fired[i] else ()
            summary.caution_by_rule.update(plan.chosen_fired[i])
            chosen[row].append(ChosenNudge(
                ids[nudge], float(plan.chosen_score[i]), float(plan.chosen_propensity[i]),
                plan.components_record(i), tuple(plan.chosen_caution[i]), fired,
            ))
        for i in range(len(plan.review_row)):
            row, nudge = int(plan.review_row[i]), int(plan.review_nudge[i])
            summary.review_by_rule.update(plan.review_fired[i])
            if plan.review_routed[i]:
                review[row].append(FlaggedNudge(ids[nudge], guard.evidence(row, nudge), plan.review_escalation[i]))
        for i in range(len(plan.blocked_row)):
            row, nudge = int(plan.blocked_row[i]), int(plan.blocked_nudge[i])
            summary.blocked_by_rule.update(plan.blocked_fired[i])
            blocked[row].append(FlaggedNudge(ids[nudge], guard.evidence(row, nudge), plan.blocked_escalation[i]))
        not_eligible_code = REASONS.index(DropReason.NOT_ELIGIBLE)
        for i in range(len(plan.dropped_row)):
            row, code = int(plan.dropped_row[i]), int(plan.dropped_reason[i])
            if code == not_eligible_code:
                not_eligible[row] += 1
                continue
            dropped[row].setdefault(REASONS[code].value, []).append(ids[int(plan.dropped_nudge[i])])
        summary.dropped.update(plan.reason_counts())
        outcomes = []
        for row in range(n):
            if not_eligible[row]:
                dropped[row]["not_eligible_count"] = [str(int(not_eligible[row]))]
            if not chosen[row]:
                summary.patients_without_nudge += 1
            outcomes.append(PatientOutcome(
                loaded.patient_ids[row], loaded.context_versions[row], tuple(chosen[row]), tuple(review[row]),
                tuple(blocked[row]), dropped[row], tuple(plan.segments_of(row)),
            ))
        return outcomes


def latest_cycle(session: Session) -> BuildCycleRow | None:
    return session.scalars(select(BuildCycleRow).order_by(BuildCycleRow.started_at.desc())).first()
