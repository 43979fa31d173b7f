"""Every model, imported in one place so metadata (and Alembic) sees them all."""

from qa.models import (
    CalibrationSession,
    LotInspection,
    QaDispute,
    QaItemResult,
    QaReview,
    QaSamplingDecision,
    SamplingStratum,
)
from sla.models import Escalation, EscalationRule, Notification, OutboxEmail
from sla.reporting.models import StoredReport

from ..intake.models import CsvImport
from ..integrations import models as _integrations  # noqa: F401 - registers its tables
from . import held_weight
from .accounts import ApiToken, MfaRecoveryCode, PasswordResetToken, User, UserRole
from .audit import AuditEvent
from .catalogue import ScorecardItem, Sop, SopStep, TaskType, TaskTypeSkill
from .clients import CalendarVersion, Client
from .contracts import Contract, SlaTarget
from .staff import StaffClient, StaffLicence, StaffProfile, StaffSkill
from .tasks import Document, IdempotencyKey, JobProgress, Lot, Message, Task

held_weight.install(Task.metadata)

__all__ = [
    "ApiToken",
    "AuditEvent",
    "CalendarVersion",
    "CalibrationSession",
    "Client",
    "Contract",
    "CsvImport",
    "Document",
    "Escalation",
    "EscalationRule",
    "IdempotencyKey",
    "JobProgress",
    "Lot",
    "LotInspection",
    "Message",
    "MfaRecoveryCode",
    "Notification",
    "OutboxEmail",
    "PasswordResetToken",
    "QaDispute",
    "QaItemResult",
    "QaReview",
    "QaSamplingDecision",
    "SamplingStratum",
    "ScorecardItem",
    "SlaTarget",
    "Sop",
    "SopStep",
    "StaffClient",
    "StaffLicence",
    "StaffProfile",
    "StaffSkill",
    "StoredReport",
    "Task",
    "TaskType",
    "TaskTypeSkill",
    "User",
    "UserRole",
]
