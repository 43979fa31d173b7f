"""Per-client integration settings that provider admins and leads edit: rules and senders.

Every change is validated here (the rule engine parses definitions before they are saved,
so evaluation never meets a broken rule), flushed and audited.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select

from ..audit import record
from ..extensions import db
from ..intake.service import active_task_types
from ..models import Client, User
from . import rules
from .models import AutomationRule, IntakeSender

MAX_RULES = 200
_DOMAIN = re.compile(r"@?([a-z0-9-]+(\.[a-z0-9-]+)+)")
# Any syntactically plain address: senders are matched as written, not validated for delivery.
_ADDRESS = re.compile(r"[^@\s<>\"]{1,64}@[a-z0-9-]+(\.[a-z0-9-]+)+")


class ConfigError(ValueError):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(" ".join(v) for v in errors.values()))
        self.errors = errors


# --- rules -----------------------------------------------------------------------------------


def client_rules(client_id: int) -> list[AutomationRule]:
    return list(db.session.scalars(
        select(AutomationRule).where(AutomationRule.client_id == client_id)
        .order_by(AutomationRule.position, AutomationRule.id)))


def save_rule(client: Client, rule: AutomationRule | None, *, name: str, match_all: bool,
              stop: bool, enabled: bool, conditions: Sequence[Mapping[str, Any]],
              actions: Sequence[Mapping[str, Any]], actor: User) -> AutomationRule:
    """Create (``rule`` None, appended last) or replace a rule's definition."""
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = ["Give the rule a name people will recognise in the hit counts."]
    elif len(name) > 120:
        errors["name"] = ["Keep the name under 120 characters."]
    try:
        parsed_conditions, parsed_actions = rules.validate(
            conditions, actions, task_types=[t.code for t in active_task_types()])
    except rules.RuleError as exc:
        errors.update(exc.errors)
    if rule is None and len(client_rules(client.id)) >= MAX_RULES:
        errors["name"] = [f"A client can have at most {MAX_RULES} rules."]
    if errors:
        raise ConfigError(errors)
    stored_conditions = [{"subject": c.subject, "op": c.op, "value": c.value}
                         for c in parsed_conditions]
    stored_actions = [{"type": a.kind, "value": a.value} for a in parsed_actions]
    before = None
    if rule is None:
        last = db.session.scalar(select(func.max(AutomationRule.position))
                                 .where(AutomationRule.client_id == client.id))
        rule = AutomationRule(client_id=client.id, position=(last or 0) + 1,
                              created_by_id=actor.id)
        db.session.add(rule)
    else:
        before = {"name": rule.name, "conditions": rule.conditions, "actions": rule.actions,
                  "enabled": rule.enabled}
    rule.name, rule.match_all, rule.stop, rule.enabled = name, match_all, stop, enabled
    rule.conditions, rule.actions = stored_conditions, stored_actions
    db.session.flush()
    record("automation.rule_saved", object_type="automation_rule", object_id=rule.id,
           client_id=client.id, actor=actor, before=before,
           after={"name": name, "conditions": stored_conditions, "actions": stored_actions,
                  "enabled": enabled})
    return rule


def set_rule_enabled(rule: AutomationRule, enabled: bool, actor: User) -> None:
    rule.enabled = enabled
    db.session.flush()
    record("automation.rule_enabled" if enabled else "automation.rule_disabled",
           object_type="automation_rule", object_id=rule.id, client_id=rule.client_id,
           actor=actor)


def move_rule(rule: AutomationRule, direction: str, actor: User) -> None:
    """Swap with the neighbour above (``up``) or below (``down``); positions renumbered."""
    ordered = client_rules(rule.client_id)
    index = ordered.index(rule)
    other = index - 1 if direction == "up" else index + 1
    if direction not in ("up", "down") or not 0 <= other < len(ordered):
        return
    ordered[index], ordered[other] = ordered[other], ordered[index]
    for position, item in enumerate(ordered, 1):
        item.position = position
    db.session.flush()
    record("automation.rule_moved", object_type="automation_rule", object_id=rule.id,
           client_id=rule.client_id, actor=actor, after={"position": rule.position})


def delete_rule(rule: AutomationRule, actor: User) -> None:
    record("automation.rule_deleted", object_type="automation_rule", object_id=rule.id,
           client_id=rule.client_id, actor=actor,
           before={"name": rule.name, "conditions": rule.conditions, "actions": rule.actions,
                   "hits": rule.hits})
    db.session.delete(rule)
    db.session.flush()


# --- allowed senders ----------------------------------------------------------------------------


def normalise_pattern(text: str) -> str:
    """``ops@agency.com`` (one address) or ``@agency.com`` (the whole domain)."""
    text = (text or "").strip().lower()
    if "@" in text and not text.startswith("@"):
        if not _ADDRESS.fullmatch(text):
            raise ConfigError({"pattern": ["Enter an e-mail address or @domain."]})
        return text
    match = _DOMAIN.fullmatch(text)
    if not match:
        raise ConfigError({"pattern": ["Enter an e-mail address (ops@agency.com) or a domain "
                                       "(@agency.com)."]})
    return "@" + match.group(1)


def add_sender(client: Client, text: str, actor: User) -> IntakeSender:
    pattern = normalise_pattern(text)
    exists = db.session.scalar(select(IntakeSender.id).where(
        IntakeSender.client_id == client.id, IntakeSender.pattern == pattern))
    if exists is not None:
        raise ConfigError({"pattern": [f"{pattern} is already allowed."]})
    sender = IntakeSender(client_id=client.id, pattern=pattern, created_by_id=actor.id)
    db.session.add(sender)
    db.session.flush()
    record("intake.sender_added", object_type="client", object_id=client.id,
           client_id=client.id, actor=actor, after={"pattern": pattern})
    return sender


def remove_sender(sender: IntakeSender, actor: User) -> None:
    record("intake.sender_removed", object_type="client", object_id=sender.client_id,
           client_id=sender.client_id, actor=actor, before={"pattern": sender.pattern})
    db.session.delete(sender)
    db.session.flush()
