"""Portal forms. The task form is built from the task type's intake schema by the shared
field layer (``provider_app.intake.fields``), so it enforces exactly the API's rules."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired, MultipleFileField
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from provider_app.intake.fields import ABSENT, ENVELOPE_SPECS, form_class, specs_from
from provider_app.models import TaskType


class TaskFormBase(FlaskForm):
    attachments = MultipleFileField("Attachments (PDF, images, CSV, XLSX, DOCX, EML)")


def task_form_class(task_type: TaskType) -> type[FlaskForm]:
    """Envelope fields first, then the type's own fields, then attachments."""
    specs = ENVELOPE_SPECS + specs_from(task_type.intake_schema)
    return form_class(specs, TaskFormBase, name=f"{task_type.code}TaskForm")


def split_cleaned(form: Any, task_type: TaskType) -> tuple[dict[str, Any], dict[str, Any]]:
    """The validated form as (envelope values, intake field values), blanks left out."""
    names = {s.name for s in specs_from(task_type.intake_schema)}
    values = {k: v for k, v in form.cleaned.items() if v is not ABSENT}
    envelope = {k: v for k, v in values.items() if k not in names}
    return envelope, {k: v for k, v in values.items() if k in names}


class MessageForm(FlaskForm):
    body = TextAreaField("Message", validators=[DataRequired(), Length(max=10_000)])


class AnswerForm(FlaskForm):
    body = TextAreaField("Your answer", validators=[DataRequired(), Length(max=10_000)])


class CancelForm(FlaskForm):
    reason = TextAreaField("Why (optional)", validators=[Optional(), Length(max=500)])


class DocumentsForm(FlaskForm):
    files = MultipleFileField("Add documents")


class BulkUploadForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file to upload.")])
    task_type = SelectField("Task type for every row", validate_choice=False)


class TokenForm(FlaskForm):
    name = StringField("Name (what uses it)", validators=[DataRequired(), Length(max=100)])


class ConfirmForm(FlaskForm):
    """A button that changes something: nothing to fill in but the CSRF token."""
