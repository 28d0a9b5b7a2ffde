"""Run a build cycle: features -> segments -> candidates -> ranking -> guardrails -> ready queue.

A cycle is split into shards of patients. Each shard is claimed, planned and written in **one**
transaction with its audit records (see :mod:`nudge_engine.adapters.shards`), so:

- running ``build`` again while a cycle is unfinished (a crash, a kill) resumes that cycle;
- two workers at once (processes or machines on PostgreSQL) build disjoint shards;
- a patient is built exactly once per cycle, and the ready queue is reconciled, not appended.

On a SQLite file several worker processes can build at once (``nudge-engine build --workers N``):
each shard is reserved in a short transaction, computed on a read snapshot outside SQLite's one
write lock, and stored with a compare-and-set on its reservation (see ``reserve_shard``). Only the
writing is serialised.

Randomness (exploration) is seeded from the cycle's day and the shard, so two builds of the same
inputs on the same day choose the same nudges and leave the ready queue unchanged.
"""

from __future__ import annotations

import gc
import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    complete_reserved_shard,
    finish_cycle_if_done,
    finish_shard,
    lease_holder,
    release_reserved_shard,
    reserve_shard,
    start_cycle,
    unfinished_cycle,
)
from nudge_engine.adapters.unit_of_work import UnitOfWork
from nudge_engine.audit.trail import AuditTrail
from nudge_engine.config import PACKAGE_ROOT
from nudge_engine.domain.errors import NotFound
from nudge_engine.domain.nudge import guarded_digest
from nudge_engine.experiments.assignment import ArmAssignment, assign, safe_nudges
from nudge_engine.experiments.model import ExperimentsConfig
from nudge_engine.experiments.repository import record_assignments
from nudge_engine.guardrails.columns import NudgeColumns
from nudge_engine.guardrails.compiler import CompiledRuleSet
from nudge_engine.logs import get_logger
from nudge_engine.personalization.agenda import (
    PatientStages,
    agenda_components,
    content_similarity,
    near_duplicates,
    patient_stages,
    patient_weights,
)
from nudge_engine.personalization.candidates import REASONS, DropReason
from nudge_engine.personalization.catalog import Catalog, catalog_digest
from nudge_engine.personalization.collaborative import ItemFactors
from nudge_engine.personalization.pipeline import event_windows, plan_batch
from nudge_engine.personalization.plan import BatchPlan
from nudge_engine.personalization.programmes import ProgrammeSet, load_programmes
from nudge_engine.personalization.ranking import PolicyKind, RankingPolicy
from nudge_engine.personalization.scoring import Component
from nudge_engine.personalization.segments import SegmentModel
from nudge_engine.services.build.collaborative import collaborative_component, fit_item_factors
from nudge_engine.services.build.guarding import ShardGuardrails
from nudge_engine.services.build.loading import LoadedShard, load_shard
from nudge_engine.services.build.models import PolicyFamily
from nudge_engine.services.build.outcomes import ChosenNudge, FlaggedNudge, PatientOutcome
from nudge_engine.services.build.slicing import take_rows
from nudge_engine.services.build.writer import PreparedOutcomes, QueuePolicy, prepare_outcomes, write_outcomes

log = get_logger(__name__)
PROGRAMMES_DIR = PACKAGE_ROOT / "data" / "programmes"
_UNFITTED = object()


@dataclass(frozen=True, slots=True)
class BuildOptions:
    shard_size: int = 2000  # patients per shard (and per transaction)
    per_patient: int = 2  # ready nudges per patient
    review_per_patient: int = 1  # review items opened per patient and cycle at most
    seed: int = 20250601
    weights: tuple[tuple[str, float], ...] = ()  # late-binding weight overrides for this build


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
    held_out: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    finished: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cycle_id": self.cycle_id, "resumed": self.resumed, "finished": self.finished,
            "shards_built": self.shards_built, "patients": self.patients,
            "ready": {"inserted": self.ready_inserted, "kept": self.ready_kept, "superseded": self.ready_superseded},
            "review": {"created": self.review_created, "auto_approved": self.review_auto_approved},
            "patients_without_nudge": self.patients_without_nudge, "held_out": self.held_out,
            "blocked_by_rule": dict(sorted(self.blocked_by_rule.items())),
            "review_by_rule": dict(sorted(self.review_by_rule.items())),
            "caution_by_rule": dict(sorted(self.caution_by_rule.items())),
            "dropped_by_reason": dict(sorted(self.dropped.items())),
            "seconds": round(self.seconds, 3),
        }

    def add(self, other: CycleSummary) -> None:
        """Add another worker's (or shard's) counts to these."""
        for name in ("shards_built", "patients", "ready_inserted", "ready_kept", "ready_superseded", "review_created",
                     "review_auto_approved", "patients_without_nudge", "held_out"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("blocked_by_rule", "review_by_rule", "caution_by_rule", "dropped"):
            getattr(self, name).update(getattr(other, name))

    def counts(self) -> dict[str, int]:
        return {"patients": self.patients, "ready_inserted": self.ready_inserted, "review_created": self.review_created,
                "patients_without_nudge": self.patients_without_nudge}


@contextmanager
def rare_collections(threshold: int = 200_000) -> Iterator[None]:
    """Run the cyclic garbage collector less often while building.

    A shard allocates millions of short-lived objects, few of them in cycles; at the default
    threshold (700 allocations) the collector ran often enough to take about a third of the
    build's CPU time. Reference counting still frees everything else at once.
    """
    before = gc.get_threshold()
    gc.set_threshold(threshold, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@dataclass
class PlannedShard:
    """One shard's decisions, computed and not yet stored; ``tally`` holds its per-rule and drop counts."""

    claim: ShardClaim
    as_of: datetime
    now: datetime  # when it was computed: the time its rows and records carry
    prepared: PreparedOutcomes | None  # the outcomes and their rows; None when no patient lives in the shard
    assignment: ArmAssignment | None
    tally: CycleSummary


class BuildCycle:
    """Builds every patient once per cycle; one instance per worker process.

    ``snapshot_uow_factory`` (SQLite files) gives read-only units of work on a snapshot: shards are
    then computed outside the write lock and several processes can build at once.
    """

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
        experiments: ExperimentsConfig | None = None,
        programmes: ProgrammeSet | None = None,
        snapshot_uow_factory: Callable[[], UnitOfWork] | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.snapshot_uow_factory = snapshot_uow_factory
        self.holder = lease_holder()
        self.audit = audit
        self.ruleset = ruleset
        self.catalog = catalog
        self._content = {n.id: guarded_digest(n) for n in catalog.nudges()}  # what each queued row is decided on
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
        self.experiments = experiments if experiments is not None else ExperimentsConfig(version="none")
        self.programmes = programmes if programmes is not None else load_programmes(PROGRAMMES_DIR, catalog)
        self.similarity = content_similarity(catalog)
        self.too_similar = self.similarity.near_duplicates()
        self.weight_overrides = dict(self.options.weights)
        self.policies = PolicyFamily(policy, catalog=catalog, segments=segments)
        self._factors: object = _UNFITTED
        self.safe = safe_nudges([str(x.category) for x in self.nudges], [sorted(x.tags) for x in self.nudges])

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
        self, *, progress: Callable[[int, int], None] | None = None, join: str | None = None, finish: bool = True
    ) -> CycleSummary:
        """Build shards until none is left; ``progress(done, total)`` after each shard.

        ``join`` names a cycle to help build (another worker started it); by default the unfinished
        cycle is resumed, or a new one started. ``finish=False`` leaves marking the cycle finished to
        the caller (who adds up several workers' counts first: :meth:`finish`).
        """
        started = time.perf_counter()
        cycle_id, as_of, resumed = self._join(join) if join else self.start_or_resume()
        summary = CycleSummary(cycle_id, resumed)
        log.info("build_cycle_started", cycle=cycle_id, resumed=resumed, worker=self.worker)
        with rare_collections():
            while self._build_one_shard(cycle_id, as_of, summary):
                if progress:
                    progress(*self._shard_progress(cycle_id))
        if finish:
            summary.finished = self.finish(cycle_id, summary)
        summary.seconds = time.perf_counter() - started
        log.info("build_cycle_done", cycle=cycle_id, finished=summary.finished, patients=summary.patients,
                 shards=summary.shards_built, seconds=round(summary.seconds, 2))
        return summary

    def finish(self, cycle_id: str, summary: CycleSummary) -> bool:
        """Mark the cycle finished (with these counts) if every shard is done; whether it is."""
        with self.uow_factory() as uow:
            finished = finish_cycle_if_done(uow.session, cycle_id=cycle_id, now=self.clock(), counts=summary.counts())
            uow.commit()
        return finished

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
        if self.snapshot_uow_factory is not None:
            return self._build_one_shard_on_snapshot(cycle_id, as_of, summary)
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

    def _build_one_shard_on_snapshot(self, cycle_id: str, as_of: datetime, summary: CycleSummary) -> bool:
        """Reserve a shard, compute it on a read snapshot, store it if the reservation still holds."""
        assert self.snapshot_uow_factory is not None
        with self.uow_factory() as uow:
            claim = reserve_shard(uow.session, cycle_id=cycle_id, holder=self.holder, now=self.clock())
            uow.commit()
        if claim is None:
            return False
        try:
            with self.snapshot_uow_factory() as reader:
                planned = self.plan_shard(reader.session, claim, as_of)
            with self.uow_factory() as uow:
                if not complete_reserved_shard(uow.session, claim, holder=self.holder, now=self.clock()):
                    log.warning("build_shard_taken_over", cycle=cycle_id, shard=claim.shard_no, worker=self.worker)
                    return True  # another worker took the reservation over and stores the shard
                self.write_shard(uow.session, planned, summary)
                uow.commit()
        except BaseException:
            with self.uow_factory() as uow:  # nothing of the shard was stored: hand it to the next worker
                release_reserved_shard(uow.session, claim, holder=self.holder)
                uow.commit()
            raise
        summary.shards_built += 1
        return True

    # ------------------------------------------------------------------ shard
    def build_shard(self, session: Session, claim: ShardClaim, as_of: datetime, summary: CycleSummary) -> None:
        """Compute and store one shard in ``session``'s transaction."""
        self.write_shard(session, self.plan_shard(session, claim, as_of), summary)

    def plan_shard(self, session: Session, claim: ShardClaim, as_of: datetime) -> PlannedShard:
        """Every patient's outcome for one shard; reads only."""
        tally = CycleSummary(claim.cycle_id, resumed=False)
        loaded = load_shard(session, claim, as_of=as_of, catalog=self.catalog, windows=self.windows)
        if not loaded.patient_ids:
            return PlannedShard(claim, as_of, as_of, None, None, tally)
        batch = loaded.batch
        guard = ShardGuardrails(self.ruleset, loaded.clinical, self.nudges, self.nudge_columns, as_of=as_of)
        assignment = assign(self.experiments, loaded.patient_ids, programmes=batch.programme, flags=batch.flags,
                            now=as_of)
        stages = patient_stages(batch, self.programmes, as_of)
        components = agenda_components(batch, self.catalog, self.programmes, as_of, similarity=self.similarity,
                                       stages=stages)
        near_duplicate = near_duplicates(batch, self.similarity, as_of)
        factors = self._item_factors(session, as_of)
        if factors is not None:
            components[Component.COLLABORATIVE] = collaborative_component(batch, factors)
        day = as_of.astimezone(UTC).date().toordinal()
        outcomes: list[PatientOutcome | None] = [None] * len(loaded.patient_ids)
        row_of = {pid: i for i, pid in enumerate(loaded.patient_ids)}
        # Patients in a policy arm of an experiment rank with that arm's policy; the rest with the default.
        kinds = np.array([assignment.policy[i] or "" for i in range(len(assignment))], dtype=np.str_)
        for kind in sorted(set(kinds.tolist())):
            rows = np.flatnonzero(kinds == kind)
            policy = self.policies.of(PolicyKind(kind)) if kind else self.policy
            part = take_rows(batch, rows)
            salt = int(hashlib.sha256(policy.version.encode()).hexdigest()[:8], 16)
            rng = np.random.default_rng([self.options.seed, day, salt, claim.shard_count, claim.shard_no])
            plan = plan_batch(
                part, self.catalog, self.segments, policy, guard, now=as_of, rng=rng,
                per_patient=self.options.per_patient, review_per_patient=self.options.review_per_patient,
                extra_components={name: values[rows] for name, values in components.items()},
                row_weights=patient_weights(part.programme, self.programmes, policy.score_weights,
                                            overrides=self.weight_overrides),
                near_duplicate=near_duplicate[rows], too_similar=self.too_similar,
            )
            for outcome in self._outcomes(plan, loaded, guard, tally, assignment=assignment, stages=stages,
                                          model_version=policy.version):
                outcomes[row_of[outcome.patient_id]] = outcome
        done = [o for o in outcomes if o is not None]
        tally.held_out = sum(1 for o in done if o.held_out)
        now = self.clock()
        prepared = prepare_outcomes(done, cycle_id=claim.cycle_id, now=now, ruleset_digest=self.ruleset.digest,
                                    model_version=self.policy.version)
        return PlannedShard(claim, as_of, now, prepared, assignment, tally)

    def write_shard(self, session: Session, planned: PlannedShard, summary: CycleSummary) -> None:
        """Store a planned shard (decisions, queue, reviews, audit records) and add its counts to ``summary``."""
        if planned.assignment is None or planned.prepared is None:
            return
        exposed = np.array([bool(o.chosen or o.withheld) for o in planned.prepared.outcomes], dtype=bool)
        record_assignments(session, self.experiments, planned.assignment, exposed=exposed, now=planned.as_of)
        counts = write_outcomes(
            session, planned.prepared, cycle_id=planned.claim.cycle_id, now=planned.now,
            ruleset_digest=self.ruleset.digest, audit=self.audit, policy=self.queue, content=self._content,
        )
        summary.add(planned.tally)
        summary.patients += counts.patients
        summary.ready_inserted += counts.ready_inserted
        summary.ready_kept += counts.ready_kept
        summary.ready_superseded += counts.ready_superseded
        summary.review_created += counts.review_created
        summary.review_auto_approved += counts.review_auto_approved

    def _item_factors(self, session: Session, as_of: datetime) -> ItemFactors | None:
        """Fitted once per cycle (per worker), on first use."""
        if self._factors is _UNFITTED:
            self._factors = fit_item_factors(session, self.catalog, as_of=as_of)
        return self._factors  # type: ignore[return-value]

    def _outcomes(
        self,
        plan: BatchPlan,
        loaded: LoadedShard,
        guard: ShardGuardrails,
        summary: CycleSummary,
        *,
        assignment: ArmAssignment,
        stages: PatientStages,
        model_version: str,
    ) -> list[PatientOutcome]:
        """Per-patient outcomes of one plan. Plan rows map to shard patients through ``plan.patient_idx``."""
        ids = plan.nudge_ids
        n = len(plan)
        shard_row = [int(i) for i in plan.patient_idx]
        chosen: list[list[ChosenNudge]] = [[] for _ in range(n)]
        withheld: list[list[str]] = [[] for _ in range(n)]
        review: list[list[FlaggedNudge]] = [[] for _ in range(n)]
        blocked: list[list[FlaggedNudge]] = [[] for _ in range(n)]
        dropped: list[dict[str, list[str]]] = [{} for _ in range(n)]
        not_eligible = np.zeros(n, dtype=np.int64)
        held = assignment.held_out
        records = plan.components_records()
        order = np.lexsort((plan.chosen_rank, plan.chosen_row))
        for i in order.tolist():
            row, nudge = int(plan.chosen_row[i]), int(plan.chosen_nudge[i])
            if held[shard_row[row]] and not self.safe[nudge]:
                withheld[row].append(ids[nudge])  # a holdout: recorded as what would have been sent
                continue
            fired = guard.evidence(shard_row[row], nudge) if plan.chosen_fired[i] else ()
            summary.caution_by_rule.update(plan.chosen_fired[i])
            chosen[row].append(ChosenNudge(
                ids[nudge], float(plan.chosen_score[i]), float(plan.chosen_propensity[i]),
                records[i], tuple(plan.chosen_caution[i]), fired,
            ))
        for i in range(len(plan.review_row)):
            row, nudge = int(plan.review_row[i]), int(plan.review_nudge[i])
            summary.review_by_rule.update(plan.review_fired[i])
            if plan.review_routed[i] and not (held[shard_row[row]] and not self.safe[nudge]):
                review[row].append(FlaggedNudge(ids[nudge], guard.evidence(shard_row[row], nudge),
                                                plan.review_escalation[i]))
        for i in range(len(plan.blocked_row)):
            row, nudge = int(plan.blocked_row[i]), int(plan.blocked_nudge[i])
            summary.blocked_by_rule.update(plan.blocked_fired[i])
            blocked[row].append(FlaggedNudge(ids[nudge], guard.evidence(shard_row[row], nudge),
                                             plan.blocked_escalation[i]))
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
            k = shard_row[row]
            if not_eligible[row]:
                dropped[row]["not_eligible_count"] = [str(int(not_eligible[row]))]
            if not chosen[row]:
                summary.patients_without_nudge += 1
            outcomes.append(PatientOutcome(
                loaded.patient_ids[k], loaded.context_versions[k], tuple(chosen[row]), tuple(review[row]),
                tuple(blocked[row]), dropped[row], tuple(plan.segments_of(row)),
                experiments=assignment.arms_of(k), held_out=bool(held[k]), withheld=tuple(withheld[row]),
                stage=stages.record(k), model_version=model_version,
            ))
        return outcomes
