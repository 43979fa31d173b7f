"""The on-demand report request form (CSRF-protected like every form)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField
from wtforms.validators import DataRequired, ValidationError

from .period import MAX_DAYS


class ReportRequestForm(FlaskForm):
    start = DateField("From", validators=[DataRequired(message="Pick the first day.")])
    end = DateField("To", validators=[DataRequired(message="Pick the last day.")])

    def validate_end(self, field) -> None:
        if self.start.data and field.data:
            if field.data < self.start.data:
                raise ValidationError("Must be on or after the first day.")
            if (field.data - self.start.data).days + 1 > MAX_DAYS:
                raise ValidationError(f"A report may span at most {MAX_DAYS} days.")
