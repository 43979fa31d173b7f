"""The one field-definition layer: a task type's intake fields and every rule they carry.

``TaskType.intake_schema`` is data (``{"name", "label", "type", "required", ...}``).
``FieldSpec.clean`` holds each rule exactly once; the portal form (WTForms), the
API schema (Marshmallow) and bulk CSV validation are all built from the specs and
all call ``clean``, so the three entry points cannot drift apart. They differ only
in how a value arrives: typed JSON, or text (form inputs, CSV cells).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from marshmallow import Schema, ValidationError, missing
from marshmallow import fields as ma_fields
from wtforms import (
    BooleanField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import StopValidation
from wtforms.widgets import CheckboxInput, DateInput, EmailInput, ListWidget, NumberInput

from ..vocab import Priority

REQUIRED = "This field is required."
FIELD_TYPES = frozenset(
    {"text", "textarea", "date", "money", "state", "enum", "multi", "policy_number", "bool",
     "email", "int"}
)
# Names the envelope, the form and the CSV format use themselves; an intake field may not.
RESERVED_NAMES = frozenset(
    {"task_type", "priority", "external_ref", "state", "fields", "attachments", "csrf_token",
     "row", "errors"}
)
US_STATES: tuple[str, ...] = (
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN",
    "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH",
    "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT",
    "VT", "VA", "WA", "WV", "WI", "WY", "PR", "VI", "GU", "AS", "MP",
)
_US_STATE_SET = frozenset(US_STATES)
DEFAULT_MAX_LENGTH = {"text": 1000, "textarea": 10_000, "email": 254}
POLICY_NUMBER = re.compile(r"[A-Z0-9/-]{5,30}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONEY = re.compile(r"-?\d+(\.\d+)?")
_INT = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})
MAX_MONEY = Decimal("9999999999.99")
PRIORITIES = tuple(p.value for p in Priority)


class _Absent:
    """Marks a blank optional field: it is left out of the task's ``fields``."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


class FieldError(ValueError):
    """A value that breaks a field's rule; the message is shown to whoever sent it."""


class SchemaDefinitionError(ValueError):
    """A task type's intake_schema itself is malformed (an admin's mistake, not a client's)."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One intake field and its rules, parsed from a task type's ``intake_schema``."""

    name: str
    label: str
    type: str
    required: bool = False
    max_length: int | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    default: Any = None

    @classmethod
    def from_definition(cls, raw: Mapping[str, Any]) -> FieldSpec:
        name = str(raw.get("name") or "")
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
            raise SchemaDefinitionError(f"field name {name!r} must be lower_snake_case")
        if name in RESERVED_NAMES:
            raise SchemaDefinitionError(f"field name {name!r} is reserved")
        kind = raw.get("type", "text")
        if kind not in FIELD_TYPES:
            raise SchemaDefinitionError(f"field {name!r} has unknown type {kind!r}")
        choices = tuple(str(c) for c in raw.get("choices") or ())
        if kind in {"enum", "multi"} and not choices:
            raise SchemaDefinitionError(f"field {name!r} of type {kind} needs choices")
        return cls(
            name=name,
            label=str(raw.get("label") or name.replace("_", " ").capitalize()),
            type=kind,
            required=bool(raw.get("required", False)),
            max_length=raw.get("max_length") or DEFAULT_MAX_LENGTH.get(kind),
            pattern=raw.get("pattern"),
            min=raw.get("min"),
            max=raw.get("max"),
            choices=choices,
            default=raw.get("default"),
        )

    def clean(self, value: Any, *, text: bool) -> Any:
        """Return the normalised value, ``ABSENT`` for a blank optional field, or raise.

        ``text=True`` when the value arrived as text (a CSV cell, a form input), so
        numbers, booleans and lists are parsed from their text form first.
        """
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "" or value == []:
            return self._blank()
        kind = _KINDS[self.type]
        value = kind.from_text(self, value) if text else kind.from_json(self, value)
        if value == []:
            return self._blank()
        return kind.check(self, value)

    def _blank(self) -> Any:
        if self.type == "bool":
            if self.required:
                raise FieldError("This must be confirmed.")
            return False
        if self.required:
            raise FieldError(REQUIRED)
        return self.default if self.default is not None else ABSENT

    def json_schema(self) -> dict[str, Any]:
        """OpenAPI/JSON Schema description of the field, derived from the same spec."""
        schema = {"title": self.label, **_KINDS[self.type].json_schema(self)}
        if self.default is not None:
            schema["default"] = self.default
        return schema


# The task envelope: the same kind of rules for what every task carries besides its fields.
TASK_TYPE_SPEC = FieldSpec("task_type", "Task type", "text", required=True, max_length=32)
PRIORITY_SPEC = FieldSpec("priority", "Priority", "enum", choices=PRIORITIES, default="normal")
EXTERNAL_REF_SPEC = FieldSpec("external_ref", "Your reference", "text", max_length=100)
STATE_SPEC = FieldSpec("state", "State", "state")
ENVELOPE_SPECS = (PRIORITY_SPEC, EXTERNAL_REF_SPEC, STATE_SPEC)


# --- the kinds: how a value is read and which rules it must pass ---------------------


def _need_str(spec: FieldSpec, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("Send this value as a string.")
    return value


def _check_text(spec: FieldSpec, value: str) -> str:
    if spec.max_length and len(value) > spec.max_length:
        raise FieldError(f"Keep this under {spec.max_length + 1} characters.")
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        raise FieldError(f"This does not match the expected format ({spec.pattern}).")
    return value


def _check_date(spec: FieldSpec, value: str) -> str:
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise FieldError("Enter a date as YYYY-MM-DD.") from None


def _money_from_json(spec: FieldSpec, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FieldError("Send the amount as a string such as \"1250.00\".")
    return str(value)


def _check_money(spec: FieldSpec, value: str) -> str:
    if not _MONEY.fullmatch(value):
        raise FieldError("Enter an amount such as 1250.00, without a currency sign or commas.")
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes this
        raise FieldError("Enter an amount such as 1250.00.") from None
    if amount < 0:
        raise FieldError("Enter an amount of zero or more.")
    if amount.as_tuple().exponent < -2 and amount != amount.quantize(Decimal("0.01")):
        raise FieldError("Use at most two decimal places.")
    _check_range(spec, amount, "an amount")
    if amount > MAX_MONEY:
        raise FieldError("This amount is too large.")
    return str(amount.quantize(Decimal("0.01")))


def _check_range(spec: FieldSpec, number: Any, noun: str) -> None:
    if spec.min is not None and number < spec.min:
        raise FieldError(f"Enter {noun} of at least {spec.min:g}.")
    if spec.max is not None and number > spec.max:
        raise FieldError(f"Enter {noun} of at most {spec.max:g}.")


def _check_state(spec: FieldSpec, value: str) -> str:
    code = value.upper()
    if code not in _US_STATE_SET:
        raise FieldError("Enter a two-letter US state code such as NY.")
    return code


def _match_choice(spec: FieldSpec, value: str) -> str | None:
    for choice in spec.choices:
        if choice.lower() == value.lower():
            return choice
    return None


def _check_enum(spec: FieldSpec, value: str) -> str:
    choice = _match_choice(spec, value)
    if choice is None:
        raise FieldError(f"Choose one of: {', '.join(spec.choices)}.")
    return choice


def _multi_from_text(spec: FieldSpec, value: Any) -> list[str]:
    return [part.strip() for part in _need_str(spec, value).split(";") if part.strip()]


def _multi_from_json(spec: FieldSpec, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FieldError("Send a list of strings.")
    return [v.strip() for v in value if v.strip()]


def _check_multi(spec: FieldSpec, values: list[str]) -> list[str]:
    chosen: list[str] = []
    unknown: list[str] = []
    for value in values:
        choice = _match_choice(spec, value)
        if choice is None:
            unknown.append(value)
        elif choice not in chosen:
            chosen.append(choice)
    if unknown:
        raise FieldError(
            f"Unknown choice {', '.join(unknown)}; choose from: {', '.join(spec.choices)}."
        )
    return chosen


def _check_policy_number(spec: FieldSpec, value: str) -> str:
    number = value.upper()
    if not POLICY_NUMBER.fullmatch(number):
        raise FieldError("Enter a policy number of 5 to 30 letters, digits, '-' or '/'.")
    return number


def _bool_from_text(spec: FieldSpec, value: Any) -> bool:
    word = _need_str(spec, value).lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise FieldError("Enter yes or no.")


def _bool_from_json(spec: FieldSpec, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError("Send true or false.")
    return value


def _check_bool(spec: FieldSpec, value: bool) -> bool:
    if spec.required and not value:
        raise FieldError("This must be confirmed.")
    return value


def _check_email(spec: FieldSpec, value: str) -> str:
    try:
        address = validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        raise FieldError("Enter a valid e-mail address.") from None
    return _check_text(spec, address)


def _int_from_text(spec: FieldSpec, value: Any) -> int:
    if not _INT.fullmatch(_need_str(spec, value)):
        raise FieldError("Enter a whole number.")
    return int(value)


def _int_from_json(spec: FieldSpec, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError("Enter a whole number.")
    return value


def _check_int(spec: FieldSpec, value: int) -> int:
    _check_range(spec, value, "a number")
    return value


def _text_schema(spec: FieldSpec) -> dict:
    schema: dict[str, Any] = {"type": "string"}
    if spec.max_length:
        schema["maxLength"] = spec.max_length
    if spec.pattern:  # the server matches the whole (stripped) value
        schema["pattern"] = f"^(?:{spec.pattern})$"
    elif spec.required:
        schema["pattern"] = r"\S"  # blank, or only spaces, counts as missing
    return schema


def _range_schema(spec: FieldSpec) -> dict:
    return {k: v for k, v in (("minimum", spec.min), ("maximum", spec.max)) if v is not None}


@dataclass(frozen=True, slots=True)
class _Kind:
    from_json: Callable[[FieldSpec, Any], Any]
    from_text: Callable[[FieldSpec, Any], Any]
    check: Callable[[FieldSpec, Any], Any]
    json_schema: Callable[[FieldSpec], dict]


_KINDS: dict[str, _Kind] = {
    "text": _Kind(_need_str, _need_str, _check_text, _text_schema),
    "textarea": _Kind(_need_str, _need_str, _check_text, _text_schema),
    "date": _Kind(_need_str, _need_str, _check_date,
                  lambda s: {"type": "string", "format": "date"}),
    "money": _Kind(_money_from_json, _need_str, _check_money,
                   lambda s: {"type": "string", "pattern": r"^\d+(\.\d{1,2})?$",
                              "description": "Amount of zero or more with at most two "
                              "decimal places; a JSON number is accepted too.",
                              **_range_schema(s)}),
    "state": _Kind(_need_str, _need_str, _check_state,
                   lambda s: {"type": "string", "enum": list(US_STATES)}),
    "enum": _Kind(_need_str, _need_str, _check_enum,
                  lambda s: {"type": "string", "enum": list(s.choices)}),
    "multi": _Kind(_multi_from_json, _multi_from_text, _check_multi,
                   lambda s: {"type": "array", "uniqueItems": True,
                              **({"minItems": 1} if s.required else {}),
                              "items": {"type": "string", "enum": list(s.choices)},
                              "description": "In CSV: one cell, values separated by ';'."}),
    "policy_number": _Kind(_need_str, _need_str, _check_policy_number,
                           lambda s: {"type": "string", "pattern": r"^[A-Z0-9/-]{5,30}$"}),
    "bool": _Kind(_bool_from_json, _bool_from_text, _check_bool,  # required: must be true
                  lambda s: {"type": "boolean", "enum": [True]} if s.required
                  else {"type": "boolean", "default": False}),
    "email": _Kind(_need_str, _need_str, _check_email,
                   lambda s: {"type": "string", "format": "email", "maxLength": 254}),
    "int": _Kind(_int_from_json, _int_from_text, _check_int,
                 lambda s: {"type": "integer", **_range_schema(s)}),
}


@lru_cache(maxsize=256)
def _parse(fingerprint: str) -> tuple[FieldSpec, ...]:
    specs = tuple(FieldSpec.from_definition(d) for d in json.loads(fingerprint))
    names = [s.name for s in specs]
    if len(names) != len(set(names)):
        raise SchemaDefinitionError("intake_schema repeats a field name")
    return specs


def specs_from(definitions: Iterable[Mapping[str, Any]]) -> tuple[FieldSpec, ...]:
    """Parse an ``intake_schema`` list (cached: task types rarely change)."""
    return _parse(json.dumps(list(definitions), sort_keys=True))


def clean_all(
    specs: Iterable[FieldSpec], values: Mapping[str, Any], *, text: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Clean every spec's value from ``values``: (cleaned values, error message by name)."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in specs:
        try:
            value = spec.clean(values.get(spec.name), text=text)
        except FieldError as exc:
            errors[spec.name] = str(exc)
            continue
        if value is not ABSENT:
            cleaned[spec.name] = value
    return cleaned, errors


# --- Marshmallow: the API schema -----------------------------------------------------


class SpecField(ma_fields.Field):
    """A Marshmallow field whose only rule is its spec's ``clean`` (typed JSON input).

    The spec's JSON schema rides along as metadata, so apispec documents exactly
    the rules that are enforced.
    """

    def __init__(self, spec: FieldSpec, *, schema_extra: dict | None = None, **kwargs: Any):
        metadata = {**spec.json_schema(), **(schema_extra or {})}
        super().__init__(required=spec.required, metadata=metadata, **kwargs)
        self.spec = spec

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any):
        try:
            cleaned = self.spec.clean(None if value is missing else value, text=False)
        except FieldError as exc:
            raise ValidationError(str(exc)) from None
        return missing if cleaned is ABSENT else cleaned

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def marshmallow_schema(specs: Iterable[FieldSpec], name: str) -> type[Schema]:
    """A Marshmallow schema class for these fields; unknown keys are refused."""
    return Schema.from_dict({spec.name: SpecField(spec) for spec in specs}, name=name)


# --- WTForms: the portal form --------------------------------------------------------


class _SpecCheck:
    """WTForms validator delegating to the spec; stores the cleaned value on the form."""

    def __init__(self, spec: FieldSpec, *, text: bool):
        self.spec = spec
        self.text = text
        self.field_flags = {"required": spec.required}

    def __call__(self, form: Any, field: Any) -> None:
        try:
            value = self.spec.clean(field.data, text=self.text)
        except FieldError as exc:
            raise StopValidation(str(exc)) from None
        form.cleaned[self.spec.name] = value


def _blank_choice(spec: FieldSpec) -> list[SelectChoice]:
    return [] if spec.default is not None else [SelectChoice("", "— choose —")]


def form_field(spec: FieldSpec) -> Any:
    """The WTForms field (widget only; the rules are the spec's) for one spec."""
    kw: dict[str, Any] = {"default": spec.default}
    if spec.required:
        kw["render_kw"] = {"aria-required": "true"}
    text_check = [_SpecCheck(spec, text=True)]
    match spec.type:
        case "textarea":
            return TextAreaField(spec.label, validators=text_check, **kw)
        case "date":
            return StringField(spec.label, validators=text_check, widget=DateInput(), **kw)
        case "email":
            return StringField(spec.label, validators=text_check, widget=EmailInput(), **kw)
        case "int":
            widget = NumberInput(min=spec.min, max=spec.max)
            return StringField(spec.label, validators=text_check, widget=widget, **kw)
        case "state" | "enum":
            options = US_STATES if spec.type == "state" else spec.choices
            return SelectField(spec.label, validators=text_check, validate_choice=False,
                               choices=_blank_choice(spec) + [SelectChoice(c) for c in options],
                               **kw)
        case "multi":
            return SelectMultipleField(
                spec.label, validators=[_SpecCheck(spec, text=False)], validate_choice=False,
                choices=[SelectChoice(c) for c in spec.choices],
                widget=ListWidget(prefix_label=False),
                option_widget=CheckboxInput(), **kw,
            )
        case "bool":
            return BooleanField(spec.label, validators=[_SpecCheck(spec, text=False)], **kw)
        case "money":
            kw["render_kw"] = {**kw.get("render_kw", {}), "inputmode": "decimal"}
            return StringField(spec.label, validators=text_check, **kw)
        case _:
            return StringField(spec.label, validators=text_check, **kw)


class SpecFormMixin:
    """Gives a form the ``cleaned`` mapping its spec validators fill in."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cleaned: dict[str, Any] = {}


def form_class(specs: Iterable[FieldSpec], base: type, name: str = "IntakeForm") -> type:
    """A form class with one field per spec; after ``validate()``, ``form.cleaned`` holds
    the normalised values (``ABSENT`` for blank optional fields)."""
    attrs = {spec.name: form_field(spec) for spec in specs}
    return type(name, (SpecFormMixin, base), attrs)


# --- CSV: one row of text cells ------------------------------------------------------


class RowValidator:
    """Validates the text cells of one CSV row for a fixed list of specs."""

    def __init__(self, specs: Iterable[FieldSpec]):
        self.specs = tuple(specs)
        self.names = frozenset(s.name for s in self.specs)

    def __call__(self, row: Mapping[str, str | None]) -> tuple[dict[str, Any], dict[str, str]]:
        return clean_all(self.specs, row, text=True)
