"""SQLAlchemy 2 typed models. Importing this package registers every table on ``Base.metadata``."""

from nudge_engine.adapters.orm.audit import AuditCheckpointRow, AuditRecordRow
from nudge_engine.adapters.orm.auth import ApiTokenRow
from nudge_engine.adapters.orm.base import Base, UTCDateTime, new_id
from nudge_engine.adapters.orm.build import (
    BuildCycleRow,
    BuildShardRow,
    ModelVersionRow,
    PatientDecisionRow,
    ReadyNudgeRow,
)
from nudge_engine.adapters.orm.catalog import NudgeRow, SegmentMembershipRow, SegmentRow
from nudge_engine.adapters.orm.clinical import (
    ClinicalFactRow,
    ClinicalPackRow,
    ConditionRow,
    MedicationRow,
    ObservationRow,
    ProcedureRow,
)
from nudge_engine.adapters.orm.events import PatientEventRow
from nudge_engine.adapters.orm.experiments import ExperimentAssignmentRow, ExperimentRow
from nudge_engine.adapters.orm.feedback import (
    EventIntakeRow,
    EventVolumeDailyRow,
    PatientFeedbackRow,
    PatientNudgeOutcomeRow,
    RuleReportRow,
)
from nudge_engine.adapters.orm.patients import (
    PatientIdentifierRow,
    PatientKeyRow,
    PatientPreferenceRow,
    PatientRow,
)
from nudge_engine.adapters.orm.review import ApprovalScopeRow, ClinicianAccountRow, ReviewItemRow

__all__ = [
    "ApiTokenRow",
    "ApprovalScopeRow",
    "AuditCheckpointRow",
    "AuditRecordRow",
    "Base",
    "BuildCycleRow",
    "BuildShardRow",
    "ClinicalFactRow",
    "ClinicalPackRow",
    "ClinicianAccountRow",
    "ConditionRow",
    "EventIntakeRow",
    "EventVolumeDailyRow",
    "ExperimentAssignmentRow",
    "ExperimentRow",
    "MedicationRow",
    "ModelVersionRow",
    "NudgeRow",
    "ObservationRow",
    "PatientDecisionRow",
    "PatientEventRow",
    "PatientFeedbackRow",
    "PatientIdentifierRow",
    "PatientKeyRow",
    "PatientNudgeOutcomeRow",
    "PatientPreferenceRow",
    "PatientRow",
    "ProcedureRow",
    "ReadyNudgeRow",
    "ReviewItemRow",
    "RuleReportRow",
    "SegmentMembershipRow",
    "SegmentRow",
    "UTCDateTime",
    "new_id",
]
