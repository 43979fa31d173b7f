"""Every model, imported in one place so metadata (and Alembic) sees them all."""

from qa.models import CalibrationSession, QaDispute, QaItemResult, QaReview, SamplingStratum
from sla.models import Escalation, EscalationRule, Notification, OutboxEmail

from .accounts import ApiToken, User, UserRole
from .audit import AuditEvent
from .catalogue import ScorecardItem, Sop, SopStep, TaskType, TaskTypeSkill
from .clients import CalendarVersion, Client
from .contracts import Contract, SlaTarget
from .staff import StaffClient, StaffLicence, StaffProfile, StaffSkill
from .tasks import Document, IdempotencyKey, JobProgress, Lot, Message, Task

__all__ = [
    "ApiToken",
    "AuditEvent",
    "CalendarVersion",
    "CalibrationSession",
    "Client",
    "Contract",
    "Document",
    "Escalation",
    "EscalationRule",
    "IdempotencyKey",
    "JobProgress",
    "Lot",
    "Message",
    "Notification",
    "OutboxEmail",
    "QaDispute",
    "QaItemResult",
    "QaReview",
    "SamplingStratum",
    "ScorecardItem",
    "SlaTarget",
    "Sop",
    "SopStep",
    "StaffClient",
    "StaffLicence",
    "StaffProfile",
    "StaffSkill",
    "Task",
    "TaskType",
    "TaskTypeSkill",
    "User",
    "UserRole",
]
