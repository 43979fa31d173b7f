"""Intake automation on portal and API tasks (the commit hook), the intake checks, and the
provider's pages that configure rules, senders and policies."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from provider_app.extensions import db
from provider_app.intake import service
from provider_app.intake.schemas import TaskInput
from provider_app.integrations import automation, policies
from provider_app.integrations.models import (
    AutomationRule,
    IntakeSender,
    PolicyOnFile,
    TaskTag,
)
from provider_app.models import AuditEvent, Message, StaffClient, StaffProfile, Task
from provider_app.vocab import Role, Status
from tests.factories import gen_token, gen_user
from tests.integrations.integrations_support import add_rule, pod_specialist

COI_VALUES = {"insured_name": "Acme Widgets LLC", "holder_name": "City of Springfield",
              "holder_address": "1 Main St", "policy_numbers": "GL-100200, AU-300400",
              "lines": ["GL"]}


def new_task(world, task_type=None, fields=None, *, client=None, ref="REF-1") -> Task:
    task = service.create_task(
        client or world.a,
        TaskInput(task_type or world.coi, "normal", ref, "NY", dict(fields or COI_VALUES)),
        actor=world.user_a, source="portal")
    db.session.commit()  # the commit hook runs the client's rules
    db.session.expire_all()
    return task


def tags(task) -> list[str]:
    return list(db.session.scalars(select(TaskTag.tag).where(TaskTag.task_id == task.id)
                                   .order_by(TaskTag.tag)))


def audit_count(action: str, task) -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == action, AuditEvent.object_id == task.id))


def test_rules_run_on_portal_tasks_and_count_their_hits(world):
    rule = add_rule(world.a, world.lead, "VIP insured",
                    [{"subject": "field:insured_name", "op": "contains", "value": "acme"}],
                    [{"type": "add_tag", "value": "vip"}, {"type": "set_priority", "value": "high"},
                     {"type": "require_qa"}])
    miss = add_rule(world.a, world.lead, "Never", [{"subject": "source", "op": "equals",
                                                     "value": "csv"}],
                    [{"type": "add_tag", "value": "never"}])
    task = new_task(world)
    assert tags(task) == ["qa-required", "vip"]
    assert task.priority == "high" and task.status == Status.QUEUED
    assert audit_count("qa.required", task) == 1  # what QA reads (docs/INTEGRATIONS.md)
    assert audit_count("automation.applied", task) == 1
    db.session.refresh(rule)
    db.session.refresh(miss)
    assert (rule.hits, miss.hits) == (1, 0) and rule.last_hit_at is not None
    new_task(world, ref="REF-2")
    db.session.refresh(rule)
    assert rule.hits == 2


def test_the_api_path_is_automated_too(world, client):
    add_rule(world.a, world.lead, "API work", [{"subject": "source", "op": "equals",
                                                "value": "api"}],
             [{"type": "add_tag", "value": "from-ams"}])
    db.session.commit()
    response = client.post("/api/v1/tasks", json={
        "task_type": "COI", "external_ref": "AMS-55", "fields": COI_VALUES,
    }, headers={"Authorization": f"Bearer {gen_token(world.a)}", "Idempotency-Key": "k-1"})
    assert response.status_code == 201, response.json
    task = db.session.scalar(select(Task).where(Task.external_ref == "AMS-55"))
    assert tags(task) == ["from-ams"]


def test_clients_without_rules_are_left_alone(world):
    task = new_task(world, client=world.b)
    assert tags(task) == [] and audit_count("automation.applied", task) == 0


def test_a_certificate_without_a_policy_on_file_asks_the_client(world):
    policies.import_policies(world.a, "policy_number,insured_name,expires_on\n"
                             "GL-100200,Acme,2099-01-01\n"
                             f"AU-300400,Acme,{(date.today() - timedelta(days=1)).isoformat()}\n")
    add_rule(world.a, world.lead, "No policy on file",
             [{"subject": "task_type", "op": "equals", "value": "COI"},
              {"subject": "check:no_policy_on_file", "op": "is_true"}],
             [{"type": "request_info",
               "value": "We cannot find {policies_not_on_file} for {reference}."},
              {"type": "add_tag", "value": "policy-check"}])
    task = new_task(world, ref="AMS-9")
    [message] = db.session.scalars(select(Message).where(Message.task_id == task.id)).all()
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    assert message.body == f"We cannot find AU-300400 (expired {yesterday}) for AMS-9."
    assert not message.internal and message.author_id is None
    assert tags(task) == ["info-requested", "policy-check"]


def test_a_request_outside_the_contract_is_routed_to_a_lead(world):
    add_rule(world.a, world.lead, "Outside the contract",
             [{"subject": "check:outside_contract", "op": "is_true"}],
             [{"type": "route_to_triage", "value": "not contracted"}])
    endt = {"policy_number": "PL-12345", "insured_name": "Acme", "effective_date": "2026-01-01",
            "change_kind": "address", "change_detail": "new address"}
    task = new_task(world, world.endt, endt)
    inside = new_task(world, ref="REF-2")
    assert tags(task) == ["needs-review"] and tags(inside) == []


def test_the_checks_explain_themselves(world):
    context = automation.CheckContext(world.a.id)
    found = context.checks("COI", {"insured_name": "Acme"})
    assert found["missing_required"] == ("Certificate holder name, Certificate holder address, "
                                         "Policy numbers (comma separated), Lines of coverage")
    assert "no_policy_on_file" not in found  # no number given: that is a missing field
    assert context.checks("COI", {"policy_numbers": "ZZ-99999"})["no_policy_on_file"] == (
        "ZZ-99999 (not on file)")
    assert context.checks(world.endt.code, {})["outside_contract"].startswith(world.endt.code)
    assert context.checks("UNKNOWN", {}) == {}


def test_assign_to_the_clients_dedicated_pod(world):
    person = pod_specialist(world.a)
    add_rule(world.a, world.lead, "Pod", [], [{"type": "assign_pod"}])
    task = new_task(world)
    assert task.status == Status.ASSIGNED and task.assignee_id == person.id
    assert audit_count("automation.pod_assigned", task) == 1


def test_nobody_free_in_the_pod_leaves_the_task_queued(world):
    person = pod_specialist(world.a)
    person.staff_profile.availability = "away"
    add_rule(world.a, world.lead, "Pod", [], [{"type": "assign_pod"}])
    task = new_task(world)
    assert task.status == Status.QUEUED and tags(task) == ["pod-waiting"]


def test_a_broken_rule_never_blocks_intake(world, monkeypatch):
    add_rule(world.a, world.lead, "Tag", [], [{"type": "add_tag", "value": "x"}])

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(automation, "add_tags", explode)
    task = new_task(world)
    assert task.id is not None and task.status == Status.QUEUED
    assert audit_count("automation.failed", task) == 1


# --- pages ---------------------------------------------------------------------------------


@pytest.fixture
def restricted_lead(world):
    lead = gen_user(Role.TEAM_LEAD)
    lead.staff_profile = StaffProfile(tier="insurance_trained", capacity=1)
    lead.staff_profile.client_links = [StaffClient(client_id=world.a.id)]
    db.session.commit()
    return lead


def test_clients_page_lists_only_visible_clients(world, client, restricted_lead):
    client.login(restricted_lead)
    body = client.get("/integrations/clients").get_data(as_text=True)
    assert world.a.code in body and world.b.code not in body
    assert f"{world.a.code.lower()}@intake.localhost" in body
    assert client.get(f"/integrations/clients/{world.a.code}").status_code == 200
    assert client.get(f"/integrations/clients/{world.b.code}").status_code == 404


@pytest.mark.parametrize("role", [Role.SPECIALIST, Role.QA_REVIEWER, Role.CLIENT_ADMIN])
def test_only_leads_and_admins_configure(world, client, role):
    client.login(gen_user(role, world.a if role == Role.CLIENT_ADMIN else None))
    assert client.get("/integrations/clients").status_code == 403
    assert client.get(f"/integrations/clients/{world.a.code}").status_code == 403


def rule_form(name: str, conditions: list, actions: list, **extra) -> dict:
    data = {"name": name, "match_all": "all", "enabled": "y", **extra}
    for i, (subject, op, value) in enumerate(conditions):
        data.update({f"conditions-{i}-subject": subject, f"conditions-{i}-op": op,
                     f"conditions-{i}-value": value})
    for i, (kind, value) in enumerate(actions):
        data.update({f"actions-{i}-type": kind, f"actions-{i}-value": value})
    return data


def test_rules_are_created_edited_moved_and_deleted_from_the_page(world, client):
    client.login(world.lead)
    page = client.get(f"/integrations/clients/{world.a.code}/rules/new")
    assert page.status_code == 200 and b"field:policy_numbers" in page.data
    response = client.post(f"/integrations/clients/{world.a.code}/rules/new", data=rule_form(
        "Certificates", [("subject", "any_of", "certificate, coi")],
        [("set_task_type", "coi")]))
    assert response.status_code == 302
    second = client.post(f"/integrations/clients/{world.a.code}/rules/new", data=rule_form(
        "Rush", [("text", "contains", "urgent")], [("set_priority", "urgent")]))
    assert second.status_code == 302
    first, rush = db.session.scalars(select(AutomationRule).where(
        AutomationRule.client_id == world.a.id).order_by(AutomationRule.position)).all()
    assert first.actions == [{"type": "set_task_type", "value": "COI"}]
    body = client.get(f"/integrations/clients/{world.a.code}").get_data(as_text=True)
    assert "Certificates" in body and "Rush" in body

    edit = client.post(f"/integrations/rules/{rush.public_id}", data=rule_form(
        "Rush words", [("text", "any_of", "urgent, asap")], [("set_priority", "urgent"),
                                                             ("add_tag", "rush")]))
    assert edit.status_code == 302
    client.post(f"/integrations/rules/{rush.public_id}/move", data={"direction": "up"})
    client.post(f"/integrations/rules/{rush.public_id}/toggle")
    db.session.expire_all()
    assert rush.name == "Rush words" and rush.position == 1 and rush.enabled is False
    assert client.post(f"/integrations/rules/{first.public_id}/delete").status_code == 302
    assert db.session.get(AutomationRule, first.id) is None


def test_invalid_rules_are_refused_with_messages_on_the_row(world, client):
    client.login(world.lead)
    response = client.post(f"/integrations/clients/{world.a.code}/rules/new", data=rule_form(
        "Broken", [("sender", "regex", "(unclosed"), ("subject", "contains", "")],
        [("set_task_type", "NOPE")]))
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "This is not a valid pattern" in text and "Enter the value to compare with" in text
    assert "Unknown task type" in text
    assert db.session.scalar(select(func.count()).select_from(AutomationRule)) == 0


def test_another_clients_rule_is_404(world, client, restricted_lead):
    foreign = add_rule(world.b, world.lead, "B's", [], [{"type": "add_tag", "value": "b"}])
    db.session.commit()
    client.login(restricted_lead)
    for method, path in [("get", ""), ("post", "/toggle"), ("post", "/delete"),
                         ("post", "/move")]:
        response = getattr(client, method)(f"/integrations/rules/{foreign.public_id}{path}",
                                           data={"direction": "up"})
        assert response.status_code == 404, path


def test_allowed_senders_are_added_and_removed(world, client):
    client.login(world.lead)
    bad = client.post(f"/integrations/clients/{world.a.code}/senders",
                      data={"pattern": "not an address"})
    assert bad.status_code == 422 and b"Enter an e-mail address" in bad.data
    good = client.post(f"/integrations/clients/{world.a.code}/senders",
                       data={"pattern": "Certs@Broker.test"})
    assert good.status_code == 302
    sender = db.session.scalar(select(IntakeSender).where(
        IntakeSender.pattern == "certs@broker.test"))
    assert sender is not None
    assert client.post(f"/integrations/senders/{sender.public_id}/delete").status_code == 302
    assert db.session.get(IntakeSender, sender.id) is None


def test_policies_are_imported_from_csv(world, client):
    client.login(world.lead)
    bad = client.post(f"/integrations/clients/{world.a.code}/policies", data={
        "file": (io.BytesIO(b"policy_number,expires_on\nno!,2026-13-01\n"), "p.csv")},
        content_type="multipart/form-data")
    assert bad.status_code == 422 and b"Row 2" in bad.data
    good = client.post(f"/integrations/clients/{world.a.code}/policies", data={
        "file": (io.BytesIO(b"policy_number,insured_name\nGL-100200,Acme\nau-300400,Acme\n"),
                 "p.csv")}, content_type="multipart/form-data")
    assert good.status_code == 302
    numbers = db.session.scalars(select(PolicyOnFile.policy_number).where(
        PolicyOnFile.client_id == world.a.id).order_by(PolicyOnFile.policy_number)).all()
    assert numbers == ["AU-300400", "GL-100200"]
    result = policies.import_policies(world.a, "policy_number\nGL-100200\n", replace=True)
    assert (result.added, result.updated, result.removed) == (0, 1, 1)


def test_the_client_page_does_not_grow_queries_with_rules(world, client, count_queries):
    client.login(world.lead)
    add_rule(world.a, world.lead, "One", [], [{"type": "add_tag", "value": "one"}])
    db.session.commit()
    with count_queries() as few:
        client.get(f"/integrations/clients/{world.a.code}")
    for n in range(8):
        add_rule(world.a, world.lead, f"R{n}", [], [{"type": "add_tag", "value": f"t{n}"}])
    db.session.commit()
    with count_queries() as many:
        client.get(f"/integrations/clients/{world.a.code}")
    assert many.count == few.count
