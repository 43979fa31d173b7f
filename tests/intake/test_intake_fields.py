"""One field-definition layer: the WTForms form, the Marshmallow schema and the CSV row
validator built from it accept and refuse exactly the same values, the same way."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict
from wtforms import Form

from provider_app.demo_catalogue import TASK_TYPES
from provider_app.intake.fields import (
    ABSENT,
    REQUIRED,
    FieldSpec,
    RowValidator,
    SchemaDefinitionError,
    form_class,
    marshmallow_schema,
    specs_from,
)

NOT_GIVEN = object()


def via_api(spec: FieldSpec, value):
    payload = {} if value is NOT_GIVEN else {spec.name: value}
    try:
        loaded = marshmallow_schema([spec], "T")().load(payload)
    except ValidationError as exc:
        return "error", exc.messages[spec.name][0]
    return "ok", loaded.get(spec.name, ABSENT)


def via_form(spec: FieldSpec, value):
    if value is NOT_GIVEN or value is False:
        formdata = MultiDict()
    elif value is True:
        formdata = MultiDict([(spec.name, "y")])
    elif isinstance(value, list):
        formdata = MultiDict([(spec.name, v) for v in value])
    else:
        formdata = MultiDict([(spec.name, value)])
    form = form_class([spec], Form)(formdata=formdata)
    if not form.validate():
        return "error", form.errors[spec.name][0]
    return "ok", form.cleaned[spec.name]


def via_csv(spec: FieldSpec, value):
    values, errors = RowValidator([spec])({} if value is NOT_GIVEN else {spec.name: value})
    if errors:
        return "error", errors[spec.name]
    return "ok", values.get(spec.name, ABSENT)


def spec(type_: str, **kw) -> FieldSpec:
    return FieldSpec.from_definition({"name": "f", "label": "F", "type": type_, **kw})


# (spec, JSON value, CSV cell, form input, expected outcome)
CASES = [
    (spec("text", max_length=5), "  abc ", "  abc ", "  abc ", ("ok", "abc")),
    (spec("text", max_length=5), "abcdef", "abcdef", "abcdef", ("error", "under 6")),
    (spec("text", required=True), NOT_GIVEN, NOT_GIVEN, NOT_GIVEN, ("error", REQUIRED)),
    (spec("text", required=True), "", "", "", ("error", REQUIRED)),
    (spec("text"), NOT_GIVEN, "", "", ("ok", ABSENT)),
    (spec("text", pattern=r"\d{4}-\d{2}"), "2025-13x", "2025-13x", "2025-13x",
     ("error", "expected format")),
    (spec("textarea"), "line 1\nline 2", "line 1\nline 2", "line 1\nline 2",
     ("ok", "line 1\nline 2")),
    (spec("date"), "2025-02-28", "2025-02-28", "2025-02-28", ("ok", "2025-02-28")),
    (spec("date"), "2025-02-30", "2025-02-30", "2025-02-30", ("error", "YYYY-MM-DD")),
    (spec("date"), "02/28/2025", "02/28/2025", "02/28/2025", ("error", "YYYY-MM-DD")),
    (spec("money"), 1250.5, "1250.5", "1250.5", ("ok", "1250.50")),
    (spec("money"), "0", "0", "0", ("ok", "0.00")),
    (spec("money"), "-1.00", "-1.00", "-1.00", ("error", "zero or more")),
    (spec("money"), "1,000", "1,000", "1,000", ("error", "without a currency sign")),
    (spec("money"), "$10", "$10", "$10", ("error", "without a currency sign")),
    (spec("money"), "1.234", "1.234", "1.234", ("error", "two decimal places")),
    (spec("money", max=100), "100.01", "100.01", "100.01", ("error", "at most 100")),
    (spec("state"), "ny", "ny", "ny", ("ok", "NY")),
    (spec("state"), "ZZ", "ZZ", "ZZ", ("error", "state code")),
    (spec("enum", choices=["address", "driver"]), "Address", "Address", "Address",
     ("ok", "address")),
    (spec("enum", choices=["address", "driver"]), "boat", "boat", "boat",
     ("error", "Choose one of: address, driver.")),
    (spec("multi", choices=["GL", "AUTO", "WC"]), ["gl", "AUTO", "GL"], "gl; AUTO;GL",
     ["gl", "AUTO", "GL"], ("ok", ["GL", "AUTO"])),
    (spec("multi", choices=["GL", "AUTO"]), ["GL", "BOAT"], "GL;BOAT", ["GL", "BOAT"],
     ("error", "Unknown choice BOAT")),
    (spec("multi", choices=["GL"], required=True), [], " ; ", NOT_GIVEN, ("error", REQUIRED)),
    (spec("policy_number"), " pl-123/456 ", " pl-123/456 ", " pl-123/456 ",
     ("ok", "PL-123/456")),
    (spec("policy_number"), "AB12", "AB12", "AB12", ("error", "5 to 30")),
    (spec("policy_number"), "AB 12345", "AB 12345", "AB 12345", ("error", "5 to 30")),
    (spec("bool"), True, "yes", True, ("ok", True)),
    (spec("bool"), False, "No", False, ("ok", False)),
    (spec("bool"), NOT_GIVEN, "", NOT_GIVEN, ("ok", False)),
    (spec("bool", required=True), False, "0", False, ("error", "confirmed")),
    (spec("email"), "Claims@Example.COM", "Claims@Example.COM", "Claims@Example.COM",
     ("ok", "Claims@example.com")),
    (spec("email"), "not-an-address", "not-an-address", "not-an-address",
     ("error", "valid e-mail")),
    (spec("int", min=1, max=10), 5, "5", "5", ("ok", 5)),
    (spec("int", min=1, max=10), 11, "11", "11", ("error", "at most 10")),
    (spec("int", min=1, max=10), 0, "0", "0", ("error", "at least 1")),
]


@pytest.mark.parametrize(("field", "as_json", "as_text", "as_form", "expected"), CASES)
def test_form_api_and_csv_agree(field, as_json, as_text, as_form, expected):
    outcomes = {"api": via_api(field, as_json), "csv": via_csv(field, as_text),
                "form": via_form(field, as_form)}
    kind, value = expected
    for channel, (got_kind, got_value) in outcomes.items():
        assert got_kind == kind, (channel, outcomes)
        if kind == "ok":
            assert got_value == value, (channel, outcomes)
        else:
            assert value in got_value, (channel, outcomes)
    # and the three messages are the very same text
    assert len({v for _, v in outcomes.values() if isinstance(v, str)}) <= 1


@pytest.mark.parametrize(("field", "value", "fragment"), [
    (spec("bool"), "yes", "true or false"),
    (spec("int"), "5", "whole number"),
    (spec("int"), True, "whole number"),
    (spec("multi", choices=["GL"]), "GL", "list of strings"),
    (spec("text"), 5, "as a string"),
    (spec("money"), True, "as a string"),
])
def test_json_wants_json_types(field, value, fragment):
    kind, message = via_api(field, value)
    assert kind == "error" and fragment in message


@pytest.mark.parametrize("task_type", TASK_TYPES, ids=lambda t: t["code"])
def test_every_catalogue_schema_builds_all_three(task_type):
    specs = specs_from(task_type["fields"])
    assert [s.name for s in specs] == [f["name"] for f in task_type["fields"]]
    schema = marshmallow_schema(specs, task_type["code"])()
    form = form_class(specs, Form)()
    assert set(schema.fields) == set(form._fields) == {s.name for s in specs}
    assert RowValidator(specs).names == {s.name for s in specs}


@pytest.mark.parametrize(("definition", "fragment"), [
    ({"name": "state", "type": "text"}, "reserved"),
    ({"name": "Bad Name", "type": "text"}, "lower_snake_case"),
    ({"name": "x", "type": "color"}, "unknown type"),
    ({"name": "x", "type": "enum"}, "needs choices"),
])
def test_a_malformed_definition_is_refused(definition, fragment):
    with pytest.raises(SchemaDefinitionError, match=fragment):
        FieldSpec.from_definition(definition)


def test_repeated_names_are_refused():
    with pytest.raises(SchemaDefinitionError, match="repeats"):
        specs_from([{"name": "a", "type": "text"}, {"name": "a", "type": "int"}])


def test_json_schema_documents_the_rules():
    assert spec("int", min=1, max=10).json_schema() == {
        "title": "F", "type": "integer", "minimum": 1, "maximum": 10}
    assert spec("multi", choices=["GL"]).json_schema()["items"]["enum"] == ["GL"]
    assert spec("policy_number").json_schema()["pattern"] == r"^[A-Z0-9/-]{5,30}$"
