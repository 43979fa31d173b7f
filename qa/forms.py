"""Forms of the QA pages (Flask-WTF: CSRF on every POST; the scorecard items are read by
qa.scorecard.parse_entries because their number depends on the SOP version)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, HiddenInput, ListWidget

from .metrics import GROUPS


class ActionForm(FlaskForm):
    """A button that changes something: CSRF only."""


class ReviewForm(FlaskForm):
    comments = TextAreaField("Overall comments", validators=[Length(max=4000)])
    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    rework_to = SelectField("If it fails, rework by", choices=[], validate_choice=True,
                            default="")


class DisputeForm(FlaskForm):
    reason = TextAreaField("Why the finding is wrong",
                           validators=[DataRequired("Say why the finding is wrong."),
                                       Length(max=2000)])


class DecideForm(FlaskForm):
    outcome = RadioField("Decision", choices=[SelectChoice("uphold", "Uphold the finding"),
                                              SelectChoice("overturn",
                                                           "Overturn it (the item passes)")],
                         validators=[InputRequired("Choose uphold or overturn.")])
    note = TextAreaField("Reason for the decision",
                         validators=[DataRequired("Explain the decision."), Length(max=2000)])
    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])


class ResumeForm(FlaskForm):
    note = TextAreaField("Corrective action taken",
                         validators=[DataRequired("Say what corrective action was taken."),
                                     Length(max=500)])


class FiguresForm(FlaskForm):
    """The period and grouping of the QA figures page (a GET form: no CSRF)."""

    class Meta:
        csrf = False

    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])
    group_by = SelectField("Per", choices=[SelectChoice(g, g.replace("_", " ")) for g in GROUPS],
                           default="specialist")
    client = SelectField("Client", choices=[], default="")

    def validate_end(self, field) -> None:
        if self.start.data and field.data and field.data < self.start.data:
            raise ValidationError("The end date is before the start date.")


class _Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class CalibrationForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired("Give the session a title."),
                                             Length(max=200)])
    tasks = _Checkboxes("Completed files", choices=[])
    reviewers = _Checkboxes("Reviewers", choices=[])
