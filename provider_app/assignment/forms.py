"""Forms of the lead board and the specialist workspace (CSRF via Flask-WTF).

Forms that change a task carry its ``version``; the services refuse a stale one.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from markupsafe import escape
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import HiddenInput, Select

from ..vocab import Availability


def _version() -> IntegerField:
    return IntegerField(widget=HiddenInput(),
                        validators=[InputRequired("The form is missing the task version.")])


class VersionForm(FlaskForm):
    """Start / submit: nothing but the version."""

    version = _version()


class StaffSelect(Select):
    """A select that writes its options directly: the staff select lists every specialist
    (hundreds), and WTForms' generic ``html_params`` per option cost the board ~15 ms a view."""

    @classmethod
    def render_option(cls, choice, **kwargs):
        if choice.render_kw or kwargs:
            return super().render_option(choice, **kwargs)
        selected = " selected" if choice.selected else ""
        label = choice.label or choice.value
        return f'<option value="{escape(choice.value)}"{selected}>{escape(label)}</option>'


class StaffChoiceForm(FlaskForm):
    """Base for forms choosing a specialist; choices are filled by the view."""

    staff = SelectField("Specialist", validators=[DataRequired("Choose a specialist.")],
                        validate_choice=False, widget=StaffSelect())
    override = BooleanField("Override soft rules (skill, client, capacity, availability, shift)")
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=500)])


class AssignForm(StaffChoiceForm):
    version = _version()


class ReassignForm(StaffChoiceForm):
    reason = TextAreaField("Reason (required)", validators=[
        DataRequired("Give a reason for the reassignment."), Length(max=500)])
    version = _version()


class UnassignForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=500)])
    version = _version()


class BulkAssignForm(StaffChoiceForm):
    tasks = SelectMultipleField("Tasks", validate_choice=False,
                                validators=[DataRequired("Tick at least one task.")])
    next = HiddenField()


class AvailabilityForm(FlaskForm):
    availability = SelectField(
        "Availability",
        choices=[SelectChoice(a.value, a.value.replace("_", " ")) for a in Availability],
        validators=[DataRequired()],
    )
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=300)])


class StepForm(FlaskForm):
    step = IntegerField(widget=HiddenInput(), validators=[InputRequired("Which step?")])
    done = BooleanField("Done")
    version = _version()


class NoteForm(FlaskForm):
    body = TextAreaField("Internal note", validators=[DataRequired("Write the note first."),
                                                      Length(max=10_000)])


class InfoRequestForm(FlaskForm):
    body = TextAreaField("Question for the client", validators=[
        DataRequired("Write the question first."), Length(max=10_000)])
    version = _version()


class ExceptionForm(FlaskForm):
    detail = TextAreaField("What is wrong", validators=[
        DataRequired("Say what the exception is."), Length(max=2_000)])
    version = _version()
