"""The review queue's plain types: statuses, decisions, commands, queries and read models.

A review item follows a small part of the FHIR Task state machine: ``pending`` (Task *requested*)
ends as ``approved`` (*completed*, the nudge goes to the ready queue), ``rejected`` (*rejected*,
never delivered) or ``expired`` (*cancelled* by the time-to-live, never delivered). A decided item
never changes again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from nudge_engine.domain.errors import InvalidInput

MAX_COMMENT = 1000
MAX_SCOPE_DAYS = 90
MAX_PER_PAGE = 100


class ReviewStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Verdict(StrEnum):
    """What a clinician decides."""

    APPROVE = "approve"
    REJECT = "reject"

    @property
    def status(self) -> ReviewStatus:
        return ReviewStatus.APPROVED if self is Verdict.APPROVE else ReviewStatus.REJECTED


class SortKey(StrEnum):
    """Queue orders; a leading ``-`` reverses."""

    PRIORITY = "priority"  # urgent first, then the earliest due
    DUE = "due"
    CREATED = "created"
    DECIDED = "decided"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who decides: the clinician's pseudonymous surrogate id (account or token id), never a name."""

    actor_id: str
    role: str = "clinician"


@dataclass(frozen=True, slots=True)
class Decide:
    """Command: approve or reject one item, with a coded reason and an optional comment."""

    verdict: Verdict
    reason_code: str
    comment: str | None = None
    scope_days: int | None = None
    expected_version: int | None = None

    def __post_init__(self) -> None:
        comment = (self.comment or "").strip() or None
        if comment is not None and len(comment) > MAX_COMMENT:
            raise InvalidInput(f"comment: at most {MAX_COMMENT} characters")
        object.__setattr__(self, "comment", comment)
        if self.scope_days is not None:
            if self.verdict is not Verdict.APPROVE:
                raise InvalidInput("scope_days: only an approval can have a scope")
            if not 1 <= self.scope_days <= MAX_SCOPE_DAYS:
                raise InvalidInput(f"scope_days: between 1 and {MAX_SCOPE_DAYS}")


@dataclass(frozen=True, slots=True)
class QueueQuery:
    """Filters, order and page of a queue listing."""

    status: ReviewStatus | None = ReviewStatus.PENDING
    rule: str | None = None
    priority: int | None = None
    older_than_hours: int | None = None
    newer_than_hours: int | None = None
    sort: str = SortKey.PRIORITY.value
    page: int = 1
    per_page: int = 25

    def __post_init__(self) -> None:
        if self.sort.lstrip("-") not in {k.value for k in SortKey}:
            raise InvalidInput(f"sort: one of {', '.join(k.value for k in SortKey)} (a leading '-' reverses)")
        if self.page < 1 or not 1 <= self.per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"page: from 1; per_page: 1 to {MAX_PER_PAGE}")


@dataclass(frozen=True, slots=True)
class Fired:
    rule: str
    action: str
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ItemSummary:
    id: str
    patient_ref: str
    nudge_id: str
    nudge_title: str | None
    status: ReviewStatus
    priority: int
    rule_ids: tuple[str, ...]
    fired: tuple[Fired, ...]
    escalation: str | None
    created_at: datetime
    due_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reason_code: str | None
    comment: str | None
    scope_days: int | None
    version: int

    def overdue(self, now: datetime) -> bool:
        return self.status is ReviewStatus.PENDING and self.due_at <= now

    def past_ttl(self, now: datetime) -> bool:
        return self.status is ReviewStatus.PENDING and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class QueuePage:
    items: tuple[ItemSummary, ...]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True, slots=True)
class QueueCounts:
    by_status: dict[str, int]
    pending_by_rule: dict[str, int]
    overdue: int
    urgent: int


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """What a decision did: the item as decided, the ready-queue row and scope it created."""

    item: ItemSummary
    delivery_id: str | None = None
    scope_id: str | None = None
    ruleset_digest: str | None = None  # an approval: the rule set its re-check ran under (the item's otherwise)
    context_version: int | None = None  # an approval: the patient's context version it was re-checked on
    patient_flagged: bool = False  # an approval of a nudge the patient flagged: recorded, never queued


@dataclass(frozen=True, slots=True)
class Skipped:
    item_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    decided: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True, slots=True)
class DayCount:
    day: str  # ISO date
    approved: int = 0
    rejected: int = 0
    expired: int = 0


@dataclass(frozen=True, slots=True)
class Dashboard:
    now: datetime
    pending: int
    overdue: int
    oldest_pending: datetime | None
    days: tuple[str, ...]
    per_rule: dict[str, tuple[DayCount, ...]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
