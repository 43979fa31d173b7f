"""The one rule engine: a client's ordered intake rules, evaluated as pure functions.

A rule is a list of conditions (all must hold, or any one) and a list of actions. Rules run in
their order; a rule marked ``stop`` ends the evaluation when it matches. Nothing here touches
the database: ``automation`` gathers the facts (including the intake checks, which need
policies on file and the contract) and applies the outcome, so the engine is tested with
plain values and can never drift between e-mail, portal, API and CSV intake.

Conditions test a *subject* with an *operator*:

* ``task_type``, ``priority``, ``source`` (email/portal/api/csv), ``sender``, ``subject``,
  ``body``, ``text`` (subject and body together), ``field:<name>`` (an intake field);
* ``check:<name>`` with ``is_true``/``is_false``: the classic intake failures
  (``missing_required``, ``no_policy_on_file``, ``outside_contract``).

Operators compare case-insensitively; ``any_of`` takes comma-separated keywords; ``regex``
is a case-insensitive search (patterns are length-limited and compiled when saved).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

CHECKS: dict[str, str] = {
    "missing_required": "required fields are missing",
    "no_policy_on_file": "a policy number is not on file (or has expired)",
    "outside_contract": "the task type is not in the client's active contract",
}
PLAIN_SUBJECTS: dict[str, str] = {
    "task_type": "Task type (code)",
    "priority": "Priority",
    "source": "Source (email, portal, api, csv)",
    "sender": "Sender e-mail address",
    "subject": "E-mail subject",
    "body": "E-mail body",
    "text": "Subject or body",
}
OPERATORS: dict[str, str] = {
    "equals": "equals",
    "not_equals": "does not equal",
    "contains": "contains",
    "not_contains": "does not contain",
    "any_of": "contains any of (comma-separated)",
    "regex": "matches the pattern",
    "missing": "is missing",
    "present": "is present",
    "is_true": "is true",
    "is_false": "is false",
}
ACTIONS: dict[str, str] = {
    "set_task_type": "Set the task type (code)",
    "set_priority": "Set the priority",
    "add_tag": "Add a tag",
    "assign_pod": "Assign to the client's dedicated pod",
    "require_qa": "Require QA review",
    "request_info": "Ask the client for information (template)",
    "route_to_triage": "Send to the triage queue for a lead",
}
PRIORITIES = ("low", "normal", "high", "urgent")
NEEDS_VALUE = frozenset({"equals", "not_equals", "contains", "not_contains", "any_of", "regex"})
ACTION_NEEDS_VALUE = frozenset({"set_task_type", "set_priority", "add_tag", "request_info"})
MAX_PATTERN = 200
MAX_TEXT = 20_000  # characters of subject/body a condition looks at
TAG = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class RuleError(ValueError):
    """A rule definition that cannot be saved, with messages keyed by field path."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Condition:
    subject: str
    op: str
    value: str = ""


@dataclass(frozen=True)
class Action:
    kind: str
    value: str = ""


@dataclass(frozen=True)
class Rule:
    key: Any  # the caller's identifier (a row id); handed back in the hits
    name: str
    conditions: tuple[Condition, ...] = ()
    actions: tuple[Action, ...] = ()
    match_all: bool = True
    stop: bool = False


@dataclass(frozen=True)
class Facts:
    """What a rule can look at. ``checks`` maps each failing intake check to its detail."""

    task_type: str | None = None
    priority: str = "normal"
    source: str = ""
    sender: str = ""
    subject: str = ""
    body: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    checks: Mapping[str, str] = field(default_factory=dict)
    reference: str = ""


@dataclass
class Outcome:
    """Everything the matching rules asked for, in rule order."""

    task_type: str | None = None
    priority: str | None = None
    tags: list[str] = field(default_factory=list)
    assign_pod: bool = False
    require_qa: bool = False
    info_requests: list[str] = field(default_factory=list)
    triage: list[str] = field(default_factory=list)
    hits: list[Any] = field(default_factory=list)
    hit_names: list[str] = field(default_factory=list)
    facts: Facts = field(default_factory=Facts)

    @property
    def changed(self) -> bool:
        return bool(self.hits)


# --- reading definitions -----------------------------------------------------------------


def subject_ok(subject: str) -> bool:
    if subject in PLAIN_SUBJECTS:
        return True
    kind, _, name = subject.partition(":")
    if kind == "field":
        return bool(re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name))
    return kind == "check" and name in CHECKS


def validate(conditions: Iterable[Mapping[str, Any]], actions: Iterable[Mapping[str, Any]],
             *, task_types: Iterable[str] = ()) -> tuple[tuple[Condition, ...],
                                                       tuple[Action, ...]]:
    """Parse raw definitions (``{"subject", "op", "value"}``, ``{"type", "value"}``) or raise
    RuleError with messages keyed ``conditions.<i>.<part>`` / ``actions.<i>.<part>``."""
    errors: dict[str, list[str]] = {}
    known_types = {t.upper() for t in task_types}
    parsed_conditions = []
    for i, raw in enumerate(conditions):
        subject = str(raw.get("subject") or "").strip()
        op = str(raw.get("op") or "").strip()
        value = str(raw.get("value") or "").strip()
        where = f"conditions.{i}"
        if not subject_ok(subject):
            errors.setdefault(f"{where}.subject", []).append(
                "Choose what to test (field:<name> for an intake field).")
        if op not in OPERATORS:
            errors.setdefault(f"{where}.op", []).append("Choose an operator.")
        elif subject.startswith("check:") and op not in ("is_true", "is_false"):
            errors.setdefault(f"{where}.op", []).append("A check is either true or false.")
        elif op in ("is_true", "is_false") and not subject.startswith("check:"):
            errors.setdefault(f"{where}.op", []).append("Only checks are true or false.")
        elif op in NEEDS_VALUE and not value:
            errors.setdefault(f"{where}.value", []).append("Enter the value to compare with.")
        elif op == "regex":
            problem = pattern_problem(value)
            if problem:
                errors.setdefault(f"{where}.value", []).append(problem)
        parsed_conditions.append(Condition(subject, op, value))
    parsed_actions = []
    for i, raw in enumerate(actions):
        kind = str(raw.get("type") or "").strip()
        value = str(raw.get("value") or "").strip()
        where = f"actions.{i}"
        if kind not in ACTIONS:
            errors.setdefault(f"{where}.type", []).append("Choose an action.")
        elif kind in ACTION_NEEDS_VALUE and not value:
            errors.setdefault(f"{where}.value", []).append("This action needs a value.")
        elif kind == "set_task_type":
            value = value.upper()
            if known_types and value not in known_types:
                errors.setdefault(f"{where}.value", []).append(f"Unknown task type {value!r}.")
        elif kind == "set_priority":
            value = value.lower()
            if value not in PRIORITIES:
                errors.setdefault(f"{where}.value", []).append(
                    f"Use one of: {', '.join(PRIORITIES)}.")
        elif kind == "add_tag":
            value = value.lower()
            if not TAG.fullmatch(value):
                errors.setdefault(f"{where}.value", []).append(
                    "Tags are 1-40 lower-case letters, digits, '-' or '_'.")
        elif kind == "request_info" and len(value) > 4000:
            errors.setdefault(f"{where}.value", []).append("Keep the template under 4,000 "
                                                            "characters.")
        parsed_actions.append(Action(kind, value))
    if not parsed_actions and not errors:
        errors["actions"] = ["Add at least one action."]
    if errors:
        raise RuleError(errors)
    return tuple(parsed_conditions), tuple(parsed_actions)


def pattern_problem(pattern: str) -> str | None:
    if len(pattern) > MAX_PATTERN:
        return f"Keep patterns under {MAX_PATTERN} characters."
    try:
        _compiled(pattern)
    except re.error as exc:
        return f"This is not a valid pattern: {exc}."
    return None


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# --- evaluating ----------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_as_text(v) for v in value)
    return str(value)


def _subject_value(subject: str, facts: Facts) -> tuple[bool, str]:
    """(present, text) of what a condition looks at."""
    kind, _, name = subject.partition(":")
    if kind == "field":
        value = facts.fields.get(name)
        text = _as_text(value).strip()
        return bool(text) or value is True, text
    if subject == "text":
        text = f"{facts.subject}\n{facts.body}"
    else:
        text = _as_text(getattr(facts, subject, "")) if subject in PLAIN_SUBJECTS else ""
    text = text[:MAX_TEXT]
    return bool(text.strip()), text


def holds(condition: Condition, facts: Facts) -> bool:
    """Whether one condition holds for these facts."""
    op, value = condition.op, condition.value
    if condition.subject.startswith("check:"):
        fired = condition.subject.partition(":")[2] in facts.checks
        return fired if op == "is_true" else not fired if op == "is_false" else False
    present, text = _subject_value(condition.subject, facts)
    haystack, needle = text.casefold(), value.casefold()
    match op:
        case "missing":
            return not present
        case "present":
            return present
        case "equals":
            return haystack.strip() == needle
        case "not_equals":
            return haystack.strip() != needle
        case "contains":
            return needle in haystack
        case "not_contains":
            return needle not in haystack
        case "any_of":
            words = [w.strip() for w in needle.split(",") if w.strip()]
            return any(w in haystack for w in words)
        case "regex":
            return _compiled(value).search(text) is not None
    return False


def matches(rule: Rule, facts: Facts) -> bool:
    if not rule.conditions:
        return True
    results = (holds(c, facts) for c in rule.conditions)
    return all(results) if rule.match_all else any(results)


def render(template: str, facts: Facts) -> str:
    """Fill ``{placeholders}`` from the facts; unknown names are left as written."""
    values = {
        "missing_fields": facts.checks.get("missing_required", ""),
        "policies_not_on_file": facts.checks.get("no_policy_on_file", ""),
        "task_type": facts.task_type or "",
        "reference": facts.reference,
        "subject": facts.subject,
        "sender": facts.sender,
    }
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def evaluate(rules: Sequence[Rule], facts: Facts,
             refresh: Callable[[Facts], Facts] | None = None) -> Outcome:
    """Run the rules in order over the facts; ``refresh`` recomputes the facts that depend on
    the task type (its fields and checks) after a rule has set it."""
    refresh = refresh or (lambda f: f)
    facts = refresh(facts)
    outcome = Outcome(facts=facts)
    for rule in rules:
        if not matches(rule, facts):
            continue
        outcome.hits.append(rule.key)
        outcome.hit_names.append(rule.name)
        for action in rule.actions:
            facts = _apply(action, facts, outcome, refresh)
        if rule.stop:
            break
    outcome.facts = facts
    return outcome


def _apply(action: Action, facts: Facts, outcome: Outcome,
           refresh: Callable[[Facts], Facts]) -> Facts:
    match action.kind:
        case "set_task_type":
            code = action.value.upper()
            outcome.task_type = code
            facts = refresh(replace(facts, task_type=code))
        case "set_priority":
            outcome.priority = action.value.lower()
            facts = replace(facts, priority=outcome.priority)
        case "add_tag":
            if action.value not in outcome.tags:
                outcome.tags.append(action.value)
        case "assign_pod":
            outcome.assign_pod = True
        case "require_qa":
            outcome.require_qa = True
        case "request_info":
            outcome.info_requests.append(render(action.value, facts))
        case "route_to_triage":
            outcome.triage.append(action.value or "a rule sent it to triage")
    return facts
