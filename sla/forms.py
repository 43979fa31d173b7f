"""Forms of the SLA area. Validation of the rules themselves lives in the services."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import HiddenInput

from provider_app.vocab import EscalationReason

from .calendars import DAY_FIELDS
from .escalations import NOTE_MAX

STATES = [SelectChoice("open", "Open"), SelectChoice("unacknowledged", "Not acknowledged"),
          SelectChoice("resolved", "Resolved"), SelectChoice("all", "All")]
AGES = [SelectChoice("", "Any age"), SelectChoice("1", "Older than 1 h"),
        SelectChoice("4", "Older than 4 h"), SelectChoice("24", "Older than 1 day"),
        SelectChoice("72", "Older than 3 days")]


class QueueFilterForm(FlaskForm):
    """The queue's filters, read from the URL so a filtered view can be shared."""

    class Meta:
        csrf = False

    client = SelectField("Client", choices=[SelectChoice("", "All clients")], default="")
    reason = SelectField(
        "Reason",
        choices=[SelectChoice("", "Any reason")] + [
            SelectChoice(r.value, r.value.replace("_", " ")) for r in EscalationReason],
        default="",
    )
    level = SelectField("Level", choices=[SelectChoice("", "Any level")] + [
        SelectChoice(str(n), str(n)) for n in (1, 2, 3)], default="")
    age = SelectField("Age", choices=AGES, default="")
    state = SelectField("State", choices=STATES, default="open")


class _Versioned(FlaskForm):
    """The version the person saw: a change from a stale page is refused, not merged."""

    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])


class AcknowledgeForm(_Versioned):
    next = HiddenField()


class OwnerForm(_Versioned):
    owner = SelectField("Owner", choices=[], validators=[DataRequired("Choose someone.")])


class NoteForm(FlaskForm):
    body = TextAreaField("Note (internal, never shown to the client)",
                         validators=[DataRequired("Write the note first."),
                                     Length(max=NOTE_MAX)])


class ResolveForm(_Versioned):
    note = TextAreaField("Resolution", validators=[DataRequired("Say how it was resolved."),
                                                   Length(max=NOTE_MAX)])


class ComplaintForm(FlaskForm):
    detail = TextAreaField("What went wrong?", validators=[
        DataRequired("Tell us what went wrong."), Length(max=NOTE_MAX)])


class CalendarVersionForm(FlaskForm):
    effective_from = DateField("Effective from",
                               validators=[DataRequired("Enter a date like 2026-12-01.")])
    timezone = StringField("Time zone", validators=[DataRequired(), Length(max=64)])
    always_open = BooleanField("24x7 (every hour counts; weekly hours and holidays ignored)")
    holiday_country = StringField("Public holidays of (country code)",
                                  validators=[Optional(), Length(max=8)])
    holiday_subdiv = StringField("Subdivision (state or province code)",
                                 validators=[Optional(), Length(max=40)])
    closures = TextAreaField("The client's own closure dates (one per line, YYYY-MM-DD)",
                             validators=[Length(max=20_000)])


for _day in DAY_FIELDS:
    setattr(CalendarVersionForm, _day, StringField(
        _day.capitalize(), validators=[Length(max=200)],
        description="Windows like 09:00-12:00, 13:00-17:00; blank when closed.",
    ))


class RulesForm(FlaskForm):
    level1 = IntegerField("Level 1 → 2 after (minutes unacknowledged)",
                          validators=[Optional(), NumberRange(min=1)])
    level2 = IntegerField("Level 2 → 3 after (minutes unacknowledged)",
                          validators=[Optional(), NumberRange(min=1)])
