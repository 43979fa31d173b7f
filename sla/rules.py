"""Per-client escalation rules: how long each level may wait for an acknowledgement."""

from __future__ import annotations

from sqlalchemy import select

from provider_app.audit import record
from provider_app.extensions import db
from provider_app.models import Client, User

from .models import TOP_LEVEL, EscalationRule

MAX_ACK_MINUTES = 60 * 24 * 30


class RuleError(ValueError):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(m for ms in errors.values() for m in ms))
        self.errors = errors


def rules_for(client: Client) -> dict[int, int]:
    """``{from_level: ack_minutes}``; a missing level never rises on its own."""
    return dict(db.session.execute(
        select(EscalationRule.from_level, EscalationRule.ack_minutes)
        .where(EscalationRule.client_id == client.id)
    ).all())


def set_rules(client: Client, minutes: dict[int, int | None], actor: User | None) -> None:
    """Replace the client's rules; ``None`` for a level removes its rule (audited)."""
    errors = {
        f"level{level}": [f"Between 1 and {MAX_ACK_MINUTES:,} minutes, or blank for never."]
        for level, value in minutes.items()
        if value is not None and not 1 <= value <= MAX_ACK_MINUTES
    }
    errors.update({
        f"level{level}": [f"Levels run from 1 to {TOP_LEVEL - 1}."]
        for level in minutes if level not in range(1, TOP_LEVEL)
    })
    if errors:
        raise RuleError(errors)
    before = rules_for(client)
    existing = {r.from_level: r for r in db.session.scalars(
        select(EscalationRule).where(EscalationRule.client_id == client.id))}
    for level, value in minutes.items():
        rule = existing.get(level)
        if value is None and rule is not None:
            db.session.delete(rule)
        elif value is not None and rule is None:
            db.session.add(EscalationRule(client_id=client.id, from_level=level, ack_minutes=value))
        elif value is not None:
            rule.ack_minutes = value
    db.session.flush()
    after = rules_for(client)
    if after != before:
        record("escalation.rules", object_type="client", object_id=client.id,
               client_id=client.id, actor=actor,
               before={str(k): v for k, v in before.items()},
               after={str(k): v for k, v in after.items()})
