"""Marshmallow schemas of the intake API: what is validated is what OpenAPI documents.

The task body is the envelope (task type, priority, reference, state) plus the
task type's ``fields``, whose schema is built from the type's intake_schema by
``fields.marshmallow_schema``. ``load_task`` is the single entry for a JSON task.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from marshmallow import Schema, ValidationError, validate, validates_schema
from marshmallow import fields as ma
from marshmallow.utils import missing

from ..models import Task, TaskType
from ..vocab import Priority, SlaState, Status
from .fields import (
    EXTERNAL_REF_SPEC,
    PRIORITY_SPEC,
    STATE_SPEC,
    TASK_TYPE_SPEC,
    SpecField,
    marshmallow_schema,
    specs_from,
)

if TYPE_CHECKING:  # the write module imports this one
    from .insert import NewTask

ErrorMap = dict[str, list[str]]


class IntakeInvalid(ValueError):
    """Input refused, with messages keyed by field path (``fields.description``)."""

    def __init__(self, errors: ErrorMap, message: str = "The request has invalid fields."):
        super().__init__(message)
        self.errors = errors


def flatten_errors(messages: Any, prefix: str = "") -> ErrorMap:
    """Marshmallow's nested messages as ``{"a.b": [...]}``; schema-level errors keep the
    parent's path (or ``_body`` at the top)."""
    if isinstance(messages, Mapping):
        flat: ErrorMap = {}
        for key, value in messages.items():
            path = prefix if key == "_schema" else f"{prefix}.{key}" if prefix else str(key)
            for sub, msgs in flatten_errors(value, path or "_body").items():
                flat.setdefault(sub, []).extend(msgs)
        return flat
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_body": list(messages)}
    if isinstance(messages, list):
        flat = {}
        for index, item in enumerate(messages):
            flat.update(flatten_errors(item, f"{prefix}.{index}"))
        return flat
    return {prefix or "_body": [str(messages)]}


class TypeRef(NamedTuple):
    """The columns of a task type that intake reads; the API's type lookup returns this
    instead of a ``TaskType`` (``service.TypeLookup``), the portal the model itself."""

    id: int
    code: str
    intake_schema: list | None


@dataclass(frozen=True, slots=True)
class TaskInput:
    """A validated task request, whatever channel it came through."""

    task_type: TaskType | TypeRef
    priority: str
    external_ref: str | None
    state: str | None
    fields: dict[str, Any]


class _FieldsNested(ma.Nested):
    """``fields`` omitted means ``{}``, so its required members are reported by name."""

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any):
        return super().deserialize({} if value is missing or value is None else value,
                                   attr, data, **kwargs)


class TaskEnvelopeSchema(Schema):
    """The body of ``POST /api/v1/tasks`` before the task type is known."""

    task_type = SpecField(TASK_TYPE_SPEC, schema_extra={
        "description": "Task type code, see GET /api/v1/task-types."})
    priority = SpecField(PRIORITY_SPEC)
    external_ref = SpecField(EXTERNAL_REF_SPEC, schema_extra={
        "description": "Your own reference; used for search and duplicate detection."})
    state = SpecField(STATE_SPEC, schema_extra={"description": "US state the work concerns."})
    field_values = ma.Dict(data_key="fields", load_default=dict, metadata={
        "description": "The task type's intake fields."})


@lru_cache(maxsize=256)
def _input_schema(code: str, fingerprint: str) -> Schema:
    specs = specs_from(json.loads(fingerprint))
    fields_schema = marshmallow_schema(specs, name=f"{code}Fields")
    attrs = {
        "task_type": SpecField(TASK_TYPE_SPEC, schema_extra={"enum": [code]}),
        "field_values": _FieldsNested(fields_schema, data_key="fields",
                                      required=any(s.required for s in specs)),
    }
    return type(f"{code}TaskInput", (TaskEnvelopeSchema,), attrs)()


def input_schema(task_type: TaskType | TypeRef) -> Schema:
    """The full body schema for one task type (cached until its intake_schema changes)."""
    return _input_schema(task_type.code, json.dumps(task_type.intake_schema or [], sort_keys=True))


_ENVELOPE = TaskEnvelopeSchema()


def load_task(
    payload: Any, find_type: Callable[[str], TaskType | TypeRef | None]
) -> TaskInput:
    """Validate a JSON task body; raises IntakeInvalid with every problem at once."""
    if not isinstance(payload, Mapping):
        raise IntakeInvalid({"_body": ["Send a JSON object."]}, "The body must be a JSON object.")
    code = payload.get("task_type")
    task_type = find_type(code.strip().upper()) if isinstance(code, str) and code.strip() else None
    if task_type is None:
        try:
            _ENVELOPE.load(payload)
            errors: ErrorMap = {}
        except ValidationError as exc:
            errors = flatten_errors(exc.messages)
        errors.setdefault("task_type", [
            f"Unknown task type {code!r}; see GET /api/v1/task-types for the codes."])
        raise IntakeInvalid(errors)
    try:
        data = input_schema(task_type).load(payload)
    except ValidationError as exc:
        raise IntakeInvalid(flatten_errors(exc.messages)) from None
    return TaskInput(
        task_type=task_type,
        priority=data["priority"],
        external_ref=data.get("external_ref"),
        state=data.get("state"),
        fields=data["field_values"],
    )


# --- output --------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, the API's one time format."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def _value(enum_or_str: Any) -> Any:
    return getattr(enum_or_str, "value", enum_or_str)


_DATETIME = {"type": "string", "format": "date-time", "nullable": True}


class DocumentSchema(Schema):
    id = ma.String(attribute="public_id", metadata={"description": "Opaque identifier."})
    filename = ma.String()
    content_type = ma.String()
    size = ma.Integer(metadata={"description": "Bytes."})
    sha256 = ma.String()
    uploaded_at = ma.Function(lambda d: iso(d.uploaded_at), metadata=_DATETIME)


class TaskSchema(Schema):
    """A task as the API returns it."""

    id = ma.String(attribute="public_id", metadata={"description": "Opaque identifier."})
    status = ma.Function(lambda t: _value(t.status),
                         metadata={"type": "string", "enum": [s.value for s in Status]})
    task_type = ma.Function(lambda t: t.task_type.code, metadata={"type": "string"})
    priority = ma.Function(lambda t: _value(t.priority),
                           metadata={"type": "string", "enum": [p.value for p in Priority]})
    external_ref = ma.String(allow_none=True)
    state = ma.String(allow_none=True)
    fields = ma.Dict(metadata={"description": "The intake fields as validated."})
    source = ma.String(metadata={"enum": ["portal", "api", "csv", "email"]})
    sla_state = ma.Function(lambda t: _value(t.sla_state),
                            metadata={"type": "string", "enum": [s.value for s in SlaState]})
    received_at = ma.Function(lambda t: iso(t.received_at), metadata=_DATETIME)
    due_at = ma.Function(lambda t: iso(t.due_at), metadata=_DATETIME)
    completed_at = ma.Function(lambda t: iso(t.completed_at), metadata=_DATETIME)
    duplicate_of = ma.Function(
        lambda t: t.duplicate_of.public_id if t.duplicate_of_id else None,
        metadata={"type": "string", "nullable": True,
                  "description": "Set when intake flagged this as a possible duplicate of an "
                  "open task (it is still worked unless someone cancels it)."})
    lot = ma.Function(lambda t: t.lot.public_id if t.lot_id else None,
                      metadata={"type": "string", "nullable": True,
                                "description": "The bulk import lot it arrived in."})
    documents = ma.List(ma.Nested(DocumentSchema))


TASK_SCHEMA = TaskSchema()


def task_json(task: Task | NewTask) -> dict:
    """A task as the API returns it; a just-written ``insert.NewTask`` has the same shape."""
    return TASK_SCHEMA.dump(task)


class TaskPageSchema(Schema):
    items = ma.List(ma.Nested(TaskSchema))
    page = ma.Integer()
    per_page = ma.Integer()
    total = ma.Integer()
    pages = ma.Integer()


# --- other request bodies ------------------------------------------------------------


class CsvList(ma.Field):
    """A query parameter taking one or more comma-separated values from a closed list."""

    def __init__(self, choices: list[str], **kwargs: Any):
        super().__init__(metadata={"type": "array", "items": {"type": "string", "enum": choices},
                                   "description": "One or more values, comma-separated."},
                         **kwargs)
        self.choices = choices

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        items = [v.strip() for v in str(value).split(",") if v.strip()]
        unknown = [v for v in items if v not in self.choices]
        if unknown:
            raise ValidationError(f"Unknown value {', '.join(unknown)}; "
                                  f"use one or more of: {', '.join(self.choices)}.")
        return items


class TaskFilterSchema(Schema):
    """Filters shared by ``GET /api/v1/tasks`` and the portal's task list."""

    status = CsvList([s.value for s in Status])
    task_type = ma.String(validate=validate.Length(max=32),
                          metadata={"description": "Task type code."})
    priority = CsvList([p.value for p in Priority])
    received_from = ma.Date(metadata={"description": "First day received (inclusive)."})
    received_to = ma.Date(metadata={"description": "Last day received (inclusive)."})
    q = ma.String(validate=validate.Length(max=100),
                  metadata={"description": "Text contained in external_ref."})
    external_ref = ma.String(validate=validate.Length(max=100),
                             metadata={"description": "Exact external_ref."})

    @validates_schema
    def _dates_in_order(self, data: dict, **kwargs: Any) -> None:
        start, end = data.get("received_from"), data.get("received_to")
        if start and end and start > end:
            raise ValidationError("Must not be before received_from.", "received_to")


class TaskListQuerySchema(TaskFilterSchema):
    # Bounded: a page number past the database's integer range was a 500, not a 422.
    page = ma.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = ma.Integer(validate=validate.Range(min=1, max=200),
                          metadata={"description": "Default 25, at most 200."})


class MessageInputSchema(Schema):
    body = ma.String(required=True, validate=validate.Length(min=1, max=10_000))


class MessageSchema(Schema):
    id = ma.Function(lambda m: m.id, metadata={"type": "integer"})
    kind = ma.Function(lambda m: _value(m.kind), metadata={"type": "string"})
    body = ma.String()
    created_at = ma.Function(lambda m: iso(m.created_at), metadata=_DATETIME)


class MessageResultSchema(Schema):
    message = ma.Nested(MessageSchema)
    task = ma.Nested(TaskSchema)


class CancelInputSchema(Schema):
    reason = ma.String(validate=validate.Length(max=500), load_default=None, allow_none=True)


class RowErrorSchema(Schema):
    row = ma.Integer(metadata={"description": "Line in the file; the header is row 1."})
    field = ma.String(metadata={"description": "Field path, e.g. fields.policy_number."})
    message = ma.String()


class JobSchema(Schema):
    """Progress and outcome of a bulk import (``GET /api/v1/jobs/<id>``)."""

    id = ma.String()
    kind = ma.String()
    status = ma.String(metadata={"enum": ["queued", "validating", "needs_decision",
                                          "importing", "completed", "rejected", "failed",
                                          "discarded"]})
    total = ma.Integer(metadata={"description": "Rows in the file (known after validation)."})
    done = ma.Integer(metadata={"description": "Rows processed in the current phase."})
    valid_rows = ma.Integer()
    invalid_rows = ma.Integer()
    imported = ma.Integer()
    duplicates_flagged = ma.Integer()
    lot = ma.String(allow_none=True)
    message = ma.String(allow_none=True)
    errors = ma.List(ma.Nested(RowErrorSchema),
                     metadata={"description": "The first 1,000 row errors; all of them are "
                               "in errors.csv."})
    error_count = ma.Integer()
    errors_truncated = ma.Boolean()
    errors_csv = ma.String(allow_none=True)
    created_at = ma.String()
    updated_at = ma.String()


class JobAcceptedSchema(Schema):
    job_id = ma.String()
    status = ma.String()
    status_url = ma.String()


class BulkUploadSchema(Schema):
    """Multipart form of ``POST /api/v1/tasks/bulk`` (documented; read from the form)."""

    file = ma.Raw(required=True, metadata={"type": "string", "format": "binary",
                                           "description": "The CSV file (UTF-8)."})
    task_type = ma.String(metadata={"description": "Task type for every row when the CSV "
                                    "has no task_type column."})
    on_invalid = ma.String(validate=validate.OneOf(["ask", "import_valid"]), load_default="ask",
                           metadata={"description": "ask: stop at needs_decision when rows "
                                     "are invalid; import_valid: import the valid rows."})


class ErrorSchema(Schema):
    error = ma.String()
    errors = ma.Dict(keys=ma.String(), values=ma.List(ma.String()),
                     metadata={"description": "Messages keyed by field path."})
