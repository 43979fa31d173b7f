"""Intake automation: a client's rules applied to a new task (or an e-mail about to become one).

``rules`` decides; this module gathers the facts (the three classic intake checks need the
client's policies on file and active contract), counts the hits and carries out the
actions on a task, each audited:

* tags (``task_tags``), priority (the SLA clock restarts from receipt, as intake would have
  set it), ``require_qa`` (audit action ``qa.required`` on the task, plus tag
  ``qa-required``), ``assign_pod`` (the least-loaded eligible specialist dedicated to the
  client, by the assignment area's own eligibility rules);
* ``request_info`` on an existing task posts the filled-in template to the client on the
  task's thread and tags it ``info-requested`` (the lifecycle has no queued → pending_client
  move, see docs/INTEGRATIONS.md); e-mail intake asks *before* a task exists instead.

``apply_intake_rules(task, source)`` is the entry point for portal, API and CSV intake; the
commit hook (``hooks``) calls it for every task created through ``intake.service`` that no
one has run the rules on yet.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from sla.clock import active_contract, start_clock

from ..audit import record
from ..conversation import post_message
from ..db_types import utcnow
from ..extensions import db
from ..lifecycle import transition
from ..models import StaffClient, Task, TaskType, User
from ..vocab import Status
from . import rules
from .models import AutomationRule, PolicyOnFile, TaskTag

POLICY_FIELDS = ("policy_number", "policy_numbers")
_SPLIT = re.compile(r"[\s,;]+")
DONE_KEY = "automation_done_task_ids"


# --- loading rules and facts -----------------------------------------------------------------


def load_rules(client_id: int) -> list[rules.Rule]:
    """The client's enabled rules in evaluation order (saved definitions were validated)."""
    rows = db.session.execute(
        select(AutomationRule.id, AutomationRule.name, AutomationRule.conditions,
               AutomationRule.actions, AutomationRule.match_all, AutomationRule.stop)
        .where(AutomationRule.client_id == client_id, AutomationRule.enabled.is_(True))
        .order_by(AutomationRule.position, AutomationRule.id)
    ).all()
    return [
        rules.Rule(
            key=row.id, name=row.name, match_all=row.match_all, stop=row.stop,
            conditions=tuple(rules.Condition(c["subject"], c["op"], c.get("value", ""))
                             for c in row.conditions or []),
            actions=tuple(rules.Action(a["type"], a.get("value", "")) for a in row.actions or []),
        )
        for row in rows
    ]


def policy_numbers_in(fields: Mapping[str, Any]) -> list[str]:
    """Policy numbers named in a task's fields (``policy_number`` or a ``policy_numbers`` list)."""
    numbers: list[str] = []
    for name in POLICY_FIELDS:
        value = fields.get(name)
        parts = value if isinstance(value, list) else _SPLIT.split(str(value or ""))
        for part in parts:
            number = str(part).strip().upper()
            if number and number not in numbers:
                numbers.append(number)
    return numbers


class CheckContext:
    """The data the intake checks need for one client, loaded once and only when asked."""

    def __init__(self, client_id: int, on: date | None = None):
        self.client_id = client_id
        self.on = on or utcnow().date()
        self._types: dict[str, TaskType] | None = None
        self._contract_loaded = False
        self._contract_type_ids: set[int] | None = None
        self._contract_name = ""
        self._policies: dict[str, date | None] = {}

    def task_type(self, code: str | None) -> TaskType | None:
        if self._types is None:
            self._types = {t.code: t for t in db.session.scalars(
                select(TaskType).where(TaskType.active.is_(True)))}
        return self._types.get((code or "").upper())

    def checks(self, code: str | None, fields: Mapping[str, Any]) -> dict[str, str]:
        """Failing checks by name, with a detail a person (and a template) can use."""
        task_type = self.task_type(code)
        if task_type is None:
            return {}
        found: dict[str, str] = {}
        names = {f["name"] for f in task_type.intake_schema or []}
        missing = [f.get("label") or f["name"] for f in task_type.intake_schema or []
                   if f.get("required") and f.get("type") != "bool"
                   and not str(_plain(fields.get(f["name"]))).strip()]
        if missing:
            found["missing_required"] = ", ".join(missing)
        numbers = policy_numbers_in(fields) if names & set(POLICY_FIELDS) else []
        if numbers:
            problems = self._policy_problems(numbers)
            if problems:
                found["no_policy_on_file"] = ", ".join(problems)
        outside = self._outside_contract(task_type)
        if outside:
            found["outside_contract"] = outside
        return found

    def _policy_problems(self, numbers: list[str]) -> list[str]:
        wanted = [n for n in numbers if n not in self._policies]
        if wanted:
            for number, expires in db.session.execute(
                select(PolicyOnFile.policy_number, PolicyOnFile.expires_on).where(
                    PolicyOnFile.client_id == self.client_id,
                    PolicyOnFile.policy_number.in_(wanted))
            ):
                self._policies[number] = expires
        problems = []
        for number in numbers:
            if number not in self._policies:
                problems.append(f"{number} (not on file)")
            elif (expires := self._policies[number]) is not None and expires < self.on:
                problems.append(f"{number} (expired {expires.isoformat()})")
        return problems

    def _outside_contract(self, task_type: TaskType) -> str | None:
        if not self._contract_loaded:
            contract = active_contract(self.client_id, self.on)
            self._contract_loaded = True
            if contract is not None:
                self._contract_name = contract.name
                self._contract_type_ids = {t.task_type_id for t in contract.targets}
        if self._contract_type_ids is None:
            return "the client has no active contract"
        if task_type.id not in self._contract_type_ids:
            return f"{task_type.code} is not in {self._contract_name}"
        return None


def _plain(value: Any) -> Any:
    return ", ".join(map(str, value)) if isinstance(value, list) else ("" if value is None
                                                                         else value)


def refresher(context: CheckContext,
              fields_for: Callable[[str | None], Mapping[str, Any]] | None = None
              ) -> Callable[[rules.Facts], rules.Facts]:
    """The engine's ``refresh``: fields (re-read for the type, for e-mail) and checks."""
    def refresh(facts: rules.Facts) -> rules.Facts:
        fields = fields_for(facts.task_type) if fields_for is not None else facts.fields
        return replace(facts, fields=fields, checks=context.checks(facts.task_type, fields))
    return refresh


def evaluate_for(client_id: int, facts: rules.Facts,
                 fields_for: Callable[[str | None], Mapping[str, Any]] | None = None
                 ) -> rules.Outcome:
    """Run the client's rules over ``facts`` and count the hits (one UPDATE); a client
    without rules costs one query."""
    loaded = load_rules(client_id)
    if not loaded:
        return rules.Outcome(facts=facts)
    outcome = rules.evaluate(loaded, facts, refresher(CheckContext(client_id), fields_for))
    count_hits(outcome.hits)
    return outcome


def count_hits(rule_ids: Iterable[int]) -> None:
    ids = list(rule_ids)
    if ids:
        db.session.execute(
            update(AutomationRule).where(AutomationRule.id.in_(ids))
            .values(hits=AutomationRule.hits + 1, last_hit_at=utcnow())
            .execution_options(synchronize_session=False)
        )


# --- applying the outcome to a task -----------------------------------------------------------


def task_facts(task: Task, source: str, *, sender: str = "", subject: str = "",
               body: str = "") -> rules.Facts:
    task_type = task.task_type or db.session.get(TaskType, task.task_type_id)
    if not sender and task.created_by_id:
        sender = db.session.scalar(select(User.email).where(User.id == task.created_by_id)) or ""
    return rules.Facts(
        task_type=task_type.code, priority=str(getattr(task.priority, "value", task.priority)),
        source=source, sender=sender.lower(), subject=subject, body=body,
        fields=dict(task.fields or {}), reference=task.external_ref or "",
    )


def already_applied(task: Task) -> bool:
    return task.id in db.session.info.get(DONE_KEY, set())


def apply_intake_rules(task: Task, source: str, *, outcome: rules.Outcome | None = None,
                       sender: str = "", subject: str = "", body: str = "") -> rules.Outcome:
    """Evaluate (unless ``outcome`` is given: e-mail intake evaluated before creating the
    task) and carry out the client's rules on a newly created task; flushed, not committed."""
    db.session.flush()
    db.session.info.setdefault(DONE_KEY, set()).add(task.id)
    if outcome is None:
        outcome = evaluate_for(task.client_id, task_facts(task, source, sender=sender,
                                                           subject=subject, body=body))
    if not outcome.hits:
        return outcome
    done: list[str] = []
    code = (task.task_type or db.session.get(TaskType, task.task_type_id)).code
    if outcome.task_type and outcome.task_type != code:
        done.append(f"task type {outcome.task_type} not applied: a task's type is fixed "
                    "once it exists")
    if outcome.priority and outcome.priority != getattr(task.priority, "value", task.priority):
        _set_priority(task, outcome.priority)
        done.append(f"priority {outcome.priority}")
    tags = list(outcome.tags)
    if outcome.require_qa:
        record("qa.required", object_type="task", object_id=task.id, client_id=task.client_id,
               reason="automation rule: " + ", ".join(outcome.hit_names)[:400])
        tags.append("qa-required")
        done.append("QA required")
    for text in outcome.info_requests:
        post_message(task, text, None)
        record("automation.info_requested", object_type="task", object_id=task.id,
               client_id=task.client_id, reason=text[:500])
        tags.append("info-requested")
        done.append("information requested")
    if outcome.triage:
        tags.append("needs-review")
        done.append("needs review: " + "; ".join(outcome.triage))
    if outcome.assign_pod:
        person = assign_to_pod(task)
        if person is None:
            tags.append("pod-waiting")
        done.append(f"pod: {person.name or person.email}" if person else "pod: nobody free")
    add_tags(task, tags)
    if tags:
        done.append("tags " + ", ".join(dict.fromkeys(tags)))
    record("automation.applied", object_type="task", object_id=task.id,
           client_id=task.client_id, reason="; ".join(done)[:1000] or None,
           after={"rules": outcome.hit_names, "source": source})
    return outcome


def _set_priority(task: Task, priority: str) -> None:
    before = getattr(task.priority, "value", task.priority)
    task.priority = priority
    if Status(task.status) in (Status.RECEIVED, Status.QUEUED):
        start_clock(task)  # still untouched: the target is the new priority's, from receipt
    db.session.flush()
    record("automation.priority", object_type="task", object_id=task.id,
           client_id=task.client_id, before={"priority": before}, after={"priority": priority})


def add_tags(task: Task, tags: Iterable[str]) -> list[str]:
    """Add tags the task does not have yet; returns the ones added."""
    wanted = list(dict.fromkeys(t for t in tags if t))
    if not wanted:
        return []
    have = set(db.session.scalars(
        select(TaskTag.tag).where(TaskTag.task_id == task.id, TaskTag.tag.in_(wanted))))
    added = [t for t in wanted if t not in have]
    db.session.add_all(TaskTag(task_id=task.id, client_id=task.client_id, tag=t) for t in added)
    db.session.flush()
    return added


def tags_for(task_ids: Iterable[int]) -> dict[int, list[str]]:
    """Tags of many tasks in one query (lists and boards)."""
    found: dict[int, list[str]] = {}
    ids = list(task_ids)
    if ids:
        for task_id, tag in db.session.execute(
            select(TaskTag.task_id, TaskTag.tag).where(TaskTag.task_id.in_(ids))
            .order_by(TaskTag.tag)
        ):
            found.setdefault(task_id, []).append(tag)
    return found


def assign_to_pod(task: Task) -> User | None:
    """Give a queued task to the least-loaded eligible specialist dedicated to its client.

    Eligibility is the assignment area's (``assignment.eligibility.reasons``, hard and soft
    rules); nobody eligible leaves the task queued for the normal assignment.
    """
    from ..assignment.eligibility import load_people, load_types, reasons

    if Status(task.status) != Status.QUEUED:
        return None
    staff_ids = db.session.scalars(select(StaffClient.staff_id).where(
        StaffClient.client_id == task.client_id, StaffClient.dedicated.is_(True))).all()
    if not staff_ids:
        return None
    task_type = load_types([task.task_type_id])[task.task_type_id]
    now = utcnow()
    eligible = [p for p in load_people(staff_ids).values()
                if not reasons(task, task_type, p, now)]
    if not eligible:
        return None
    best = max(eligible, key=lambda p: (p.free, -p.user_id))
    task.assignee_id = best.user_id
    task.waiting_reason = None
    transition(task, Status.ASSIGNED, reason="automation: the client's dedicated pod")
    record("automation.pod_assigned", object_type="task", object_id=task.id,
           client_id=task.client_id, after={"assignee_id": best.user_id})
    current_app.logger.info("task %s assigned to pod member %s", task.id, best.user_id)
    return db.session.get(User, best.user_id)
