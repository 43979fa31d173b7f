"""The rule engine alone: pure functions over plain facts (no database)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from provider_app.integrations import rules
from provider_app.integrations.rules import Action, Condition, Facts, Rule

FACTS = Facts(task_type=None, priority="normal", source="email", sender="ops@agency.test",
              subject="URGENT: certificate for Acme", body="Policy GL-100200, holder City",
              fields={"policy_number": "GL-100200", "lines": ["GL", "AUTO"], "notes": ""})


def rule(*conditions, actions=(Action("add_tag", "hit"),), **kw) -> Rule:
    return Rule(key=kw.pop("key", 1), name=kw.pop("name", "r"), conditions=tuple(conditions),
                actions=tuple(actions), **kw)


@pytest.mark.parametrize(("condition", "expected"), [
    (Condition("subject", "contains", "certificate"), True),
    (Condition("subject", "contains", "CERTIFICATE"), True),
    (Condition("subject", "not_contains", "loss run"), True),
    (Condition("text", "any_of", "loss run, holder"), True),
    (Condition("body", "any_of", "loss run, endorsement"), False),
    (Condition("sender", "equals", "OPS@agency.test"), True),
    (Condition("sender", "regex", r"@agency\.test$"), True),
    (Condition("source", "not_equals", "portal"), True),
    (Condition("field:policy_number", "regex", r"^GL-\d+$"), True),
    (Condition("field:lines", "contains", "auto"), True),
    (Condition("field:notes", "missing"), True),
    (Condition("field:holder_name", "missing"), True),
    (Condition("field:policy_number", "present"), True),
    (Condition("task_type", "missing"), True),
    (Condition("check:missing_required", "is_true"), False),
    (Condition("check:missing_required", "is_false"), True),
])
def test_conditions(condition, expected):
    assert rules.holds(condition, FACTS) is expected


def test_all_or_any_and_always():
    yes, no = Condition("subject", "contains", "acme"), Condition("subject", "contains", "zzz")
    assert rules.matches(rule(yes, no, match_all=False), FACTS)
    assert not rules.matches(rule(yes, no), FACTS)
    assert rules.matches(rule(), FACTS)  # no conditions: always


def test_rules_run_in_order_and_stop():
    outcome = rules.evaluate([
        rule(key=1, name="a", actions=(Action("add_tag", "one"),)),
        rule(Condition("subject", "contains", "urgent"), key=2, name="b", stop=True,
             actions=(Action("set_priority", "urgent"),)),
        rule(key=3, name="c", actions=(Action("add_tag", "never"),)),
    ], FACTS)
    assert outcome.hits == [1, 2] and outcome.hit_names == ["a", "b"]
    assert outcome.tags == ["one"] and outcome.priority == "urgent"


def test_setting_the_task_type_refreshes_type_dependent_facts():
    def refresh(facts: Facts) -> Facts:
        missing = {"missing_required": "Holder name"} if facts.task_type == "COI" else {}
        return replace(facts, checks=missing)

    outcome = rules.evaluate([
        rule(Condition("subject", "contains", "certificate"), key=1,
             actions=(Action("set_task_type", "coi"),)),
        rule(Condition("check:missing_required", "is_true"), key=2,
             actions=(Action("request_info", "Please send: {missing_fields} ({task_type})."),)),
    ], FACTS, refresh)
    assert outcome.task_type == "COI"
    assert outcome.info_requests == ["Please send: Holder name (COI)."]


def test_templates_fill_known_placeholders_only():
    facts = Facts(task_type="COI", reference="AMS-1", checks={"no_policy_on_file": "X (expired)"})
    text = rules.render("{reference}: {policies_not_on_file} {unknown} {sender.__class__}", facts)
    assert text == "AMS-1: X (expired) {unknown} {sender.__class__}"


def test_validation_reports_each_problem_by_path():
    with pytest.raises(rules.RuleError) as bad:
        rules.validate(
            [{"subject": "sender", "op": "regex", "value": "(unclosed"},
             {"subject": "nonsense", "op": "equals", "value": "x"},
             {"subject": "check:missing_required", "op": "contains", "value": "x"},
             {"subject": "subject", "op": "contains", "value": ""}],
            [{"type": "set_task_type", "value": "NOPE"}, {"type": "add_tag", "value": "Bad Tag"},
             {"type": "set_priority", "value": "soon"}, {"type": "explode"}],
            task_types=["COI", "DATA"])
    assert set(bad.value.errors) == {
        "conditions.0.value", "conditions.1.subject", "conditions.2.op", "conditions.3.value",
        "actions.0.value", "actions.1.value", "actions.2.value", "actions.3.type"}


def test_validation_normalises_values():
    conditions, actions = rules.validate(
        [], [{"type": "set_task_type", "value": "coi"}, {"type": "add_tag", "value": "VIP"},
             {"type": "set_priority", "value": "HIGH"}], task_types=["COI"])
    assert conditions == () and [a.value for a in actions] == ["COI", "vip", "high"]


def test_a_rule_needs_an_action():
    with pytest.raises(rules.RuleError) as bad:
        rules.validate([{"subject": "subject", "op": "contains", "value": "x"}], [])
    assert "actions" in bad.value.errors


def test_very_long_patterns_are_refused():
    assert rules.pattern_problem("a" * 500)
