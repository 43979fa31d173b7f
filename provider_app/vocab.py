"""The product's closed vocabularies (roles, tiers, statuses, priorities).

Stored as plain strings with CHECK constraints so both SQLite and PostgreSQL
enforce them and adding a value is a one-line migration.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    TEAM_LEAD = "team_lead"
    SPECIALIST = "specialist"
    QA_REVIEWER = "qa_reviewer"
    CLIENT_ADMIN = "client_admin"
    CLIENT_USER = "client_user"


PROVIDER_ROLES = frozenset({Role.ADMIN, Role.TEAM_LEAD, Role.SPECIALIST, Role.QA_REVIEWER})
CLIENT_ROLES = frozenset({Role.CLIENT_ADMIN, Role.CLIENT_USER})


class ClientKind(StrEnum):
    AGENCY = "agency"
    CARRIER = "carrier"
    MGA = "mga"
    TPA = "tpa"
    BROKER = "broker"


class Tier(StrEnum):
    """Task-type tier: BPO work any trained person may do, KPO needs insurance training."""

    BPO = "BPO"
    KPO = "KPO"


class StaffTier(StrEnum):
    GENERAL = "general"
    INSURANCE_TRAINED = "insurance_trained"


class Availability(StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    ON_LEAVE = "on_leave"
    OFFLINE = "offline"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}


class Status(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    PENDING_CLIENT = "pending_client"
    SUBMITTED = "submitted"
    IN_QA = "in_qa"
    REWORK = "rework"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


CLOSED_STATUSES = frozenset({Status.COMPLETED, Status.CANCELLED})
OPEN_STATUSES = frozenset(set(Status) - CLOSED_STATUSES)
HELD_STATUSES = (Status.ASSIGNED, Status.IN_PROGRESS, Status.PENDING_CLIENT, Status.REWORK)
"""Statuses in which a task occupies its assignee's capacity (``staff_profiles.held_weight``)."""


class SlaState(StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    BREACHED = "breached"


class EscalationReason(StrEnum):
    SLA_AT_RISK = "sla_at_risk"
    SLA_BREACHED = "sla_breached"
    QA_CRITICAL_FAIL = "qa_critical_fail"
    SPECIALIST_EXCEPTION = "specialist_exception"
    CLIENT_COMPLAINT = "client_complaint"


class MessageKind(StrEnum):
    MESSAGE = "message"
    INFO_REQUEST = "info_request"
    INFO_RESPONSE = "info_response"
    NOTE = "note"


def values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]
