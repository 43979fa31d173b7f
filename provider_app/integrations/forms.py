"""Forms of the provider's integration pages (CSRF on every one via Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from ..intake.fields import ENVELOPE_SPECS, form_class, specs_from
from ..models import TaskType
from . import rules

CONDITION_ROWS = 4
ACTION_ROWS = 3


def choices(pairs: list[tuple[str, str]]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


class ConditionForm(Form):
    subject = SelectField("Test", validate_choice=False)
    op = SelectField("Operator", validate_choice=False,
                     choices=choices([("", "—"), *rules.OPERATORS.items()]))
    value = StringField("Value", validators=[Optional(), Length(max=rules.MAX_PATTERN)])

    @property
    def blank(self) -> bool:
        return not (self.subject.data or self.op.data or (self.value.data or "").strip())


class ActionForm(Form):
    type = SelectField("Action", validate_choice=False,
                       choices=choices([("", "—"), *rules.ACTIONS.items()]))
    value = TextAreaField("Value or template", validators=[Optional(), Length(max=4000)],
                          render_kw={"rows": 2})

    @property
    def blank(self) -> bool:
        return not (self.type.data or (self.value.data or "").strip())


class RuleForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    match_all = SelectField("Conditions", choices=choices([("all", "all must hold"),
                                                           ("any", "any one is enough")]))
    enabled = BooleanField("Enabled", default=True)
    stop = BooleanField("Stop evaluating later rules when this one matches")
    conditions = FieldList(FormField(ConditionForm), min_entries=CONDITION_ROWS)
    actions = FieldList(FormField(ActionForm), min_entries=ACTION_ROWS)

    def set_subjects(self, subjects: list[tuple[str, str]]) -> None:
        for entry in self.conditions:
            entry.form.subject.choices = choices([("", "—"), *subjects])

    def pad(self) -> None:
        """One empty row more than used, so a rule can always grow."""
        if not any(e.form.blank for e in self.conditions):
            self.conditions.append_entry()
        if not any(e.form.blank for e in self.actions):
            self.actions.append_entry()

    def definitions(self) -> tuple[list[dict], list[dict]]:
        conditions = [{"subject": e.form.subject.data, "op": e.form.op.data,
                       "value": e.form.value.data or ""}
                      for e in self.conditions if not e.form.blank]
        actions = [{"type": e.form.type.data, "value": e.form.value.data or ""}
                   for e in self.actions if not e.form.blank]
        return conditions, actions


def subject_choices(task_types: list[TaskType]) -> list[tuple[str, str]]:
    """Plain subjects, the checks, then every intake field of the catalogue."""
    names = sorted({f["name"]: f.get("label") or f["name"]
                    for t in task_types for f in t.intake_schema or []}.items())
    return [*rules.PLAIN_SUBJECTS.items(),
            *((f"check:{k}", f"Check: {v}") for k, v in rules.CHECKS.items()),
            *((f"field:{name}", f"Field: {label} ({name})") for name, label in names)]


class SenderForm(FlaskForm):
    pattern = StringField("Allowed sender (address or @domain)",
                          validators=[DataRequired(), Length(max=254)])


class PolicyUploadForm(FlaskForm):
    file = FileField("Policies CSV (policy_number, insured_name, expires_on)",
                     validators=[FileRequired("Choose a CSV file.")])
    replace = BooleanField("Replace the list (remove numbers the file does not contain)")


class ConfirmForm(FlaskForm):
    """A button that changes something: nothing to fill in but the CSRF token."""


class MoveForm(FlaskForm):
    direction = HiddenField(validators=[DataRequired()])


class TriageTypeForm(FlaskForm):
    class Meta:
        csrf = False  # a GET that only chooses what form to show

    type = SelectField("Task type", validate_choice=False)


class RejectForm(FlaskForm):
    note = TextAreaField("Why it is rejected", validators=[DataRequired(), Length(max=2000)])


class DuplicateForm(FlaskForm):
    task = StringField("Task id or the client's reference",
                       validators=[DataRequired(), Length(max=100)])


class OutputForm(FlaskForm):
    file = FileField("Completed document", validators=[FileRequired("Choose the file.")])
    next = HiddenField()


class _TriageBase(FlaskForm):
    pass


def triage_form_class(task_type: TaskType) -> type[FlaskForm]:
    """The task type's intake form (envelope + fields), built by the shared field layer."""
    return form_class(ENVELOPE_SPECS + specs_from(task_type.intake_schema), _TriageBase,
                      name=f"{task_type.code}TriageForm")
