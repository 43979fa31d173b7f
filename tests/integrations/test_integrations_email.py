"""E-mail intake end to end: smtplib → the real aiosmtpd receiver → tasks, threads, triage."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import func, select

from provider_app.conversation import request_info
from provider_app.extensions import db
from provider_app.integrations.models import InboundEmail, TaskTag
from provider_app.models import AuditEvent, Document, Message, Task
from provider_app.vocab import MessageKind, Role, Status
from sla.models import OutboxEmail
from tests.factories import gen_task, gen_user
from tests.integrations.integrations_support import COI_BODY, PDF, add_rule, coi_rule, email


def items(client) -> list[InboundEmail]:
    db.session.expire_all()
    return list(db.session.scalars(select(InboundEmail).where(
        InboundEmail.client_id == client.id).order_by(InboundEmail.id)))


def outbox_to(address: str) -> list[OutboxEmail]:
    return list(db.session.scalars(select(OutboxEmail).where(
        OutboxEmail.to_address == address).order_by(OutboxEmail.id)))


def test_a_complete_request_becomes_a_task_with_its_documents(world, smtp, redis_conn):
    coi_rule(world)
    db.session.commit()
    message = email(world.address_a, "Certificate request for Acme", COI_BODY,
                    attachments=[("schedule.pdf", "application/pdf", PDF)])
    assert smtp.send(message) == {}

    [item] = items(world.a)
    assert item.status == "created" and item.kind == "request"
    task = db.session.get(Task, item.task_id)
    assert task.source == "email" and task.task_type_id == world.coi.id
    assert task.status == Status.QUEUED and task.due_at is not None
    assert task.external_ref == "AMS-7781"
    assert task.fields["insured_name"] == "Acme Widgets LLC"
    assert task.fields["lines"] == ["GL", "AUTO"] and task.fields["additional_insured"] is True
    kinds = sorted((d.kind, d.filename) for d in task.documents)
    assert kinds == [("email", "message.eml"), ("intake", "schedule.pdf")]
    # The sender hears back with the task's thread token in the subject.
    [ack] = outbox_to("broker@agency-a.test")
    assert f"[TL-{task.public_id[:10]}]" in ack.subject
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "email.task_created", AuditEvent.object_id == task.id)) == 1


def test_the_same_message_delivered_twice_makes_one_task(world, smtp, redis_conn):
    coi_rule(world)
    db.session.commit()
    message = email(world.address_a, "COI please", COI_BODY, message_id="<dup-1@agency-a.test>")
    smtp.send(message)
    smtp.send(message)  # an MTA retry after a lost 250
    [item] = items(world.a)
    assert item.deliveries == 2 and item.status == "created"
    assert db.session.scalar(select(func.count()).select_from(Task).where(
        Task.client_id == world.a.id)) == 1


def test_one_message_to_two_clients_is_one_item_each(world, smtp, redis_conn):
    from provider_app.integrations import configuration

    configuration.add_sender(world.b, "@agency-a.test", world.lead)
    db.session.commit()
    b_address = f"{world.b.code.lower()}@intake.localhost"
    smtp.send(email(f"{world.address_a}, {b_address}", "Question", "No fields here"))
    assert [i.status for i in items(world.a)] == ["triage"]
    assert [i.status for i in items(world.b)] == ["triage"]


def test_a_sender_not_allowed_is_refused_and_nothing_is_kept(world, smtp, redis_conn):
    with pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.send(email(world.address_a, "COI please", COI_BODY, sender="someone@else.test"))
    assert refused.value.smtp_code == 550
    [item] = items(world.a)
    assert item.status == "rejected" and item.raw_storage is None and item.body == ""
    assert "someone@else.test" in item.problems[0]


def test_the_clients_own_users_may_send_without_being_listed(world, smtp, redis_conn):
    smtp.send(email(world.address_a, "Hello", "Anything", sender=world.user_a.email))
    assert [i.status for i in items(world.a)] == ["triage"]


def test_unknown_intake_addresses_are_refused_at_rcpt(world, smtp, redis_conn):
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        smtp.send(email("nobody@intake.localhost", "x", "y"))
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        smtp.send(email(f"{world.a.code.lower()}@elsewhere.test", "x", "y"))


def test_without_a_routing_rule_the_request_waits_in_triage(world, smtp, redis_conn):
    smtp.send(email(world.address_a, "Can you help", COI_BODY))
    [item] = items(world.a)
    assert item.status == "triage" and item.task_id is None
    assert item.problems == ["No routing rule chose a task type."]
    assert item.raw_storage and item.proposed["fields"]["named_insured"] == "Acme Widgets LLC"


def test_incomplete_requests_are_asked_about_then_created_on_reply(world, smtp, redis_conn):
    coi_rule(world)
    add_rule(world.a, world.lead, "Ask for what is missing",
             [{"subject": "check:missing_required", "op": "is_true"}],
             [{"type": "request_info",
               "value": "We need these before we can start: {missing_fields}."}])
    db.session.commit()
    body = "Named insured: Acme Widgets LLC\nPolicy numbers: GL-100200\nLines of coverage: GL\n"
    smtp.send(email(world.address_a, "Certificate needed", body))
    [item] = items(world.a)
    assert item.status == "awaiting_info" and item.task_id is None  # no task, no SLA clock
    [question] = outbox_to("broker@agency-a.test")
    assert "Certificate holder name, Certificate holder address" in question.body
    token = f"[TL-Q-{item.public_id[:10]}]"
    assert token in question.subject

    reply = ("Certificate holder name: City of Springfield\n"
             "Certificate holder address: 1 Main St, Springfield IL\n\n"
             "On Monday, Throughline wrote:\n> We need these before we can start")
    smtp.send(email(world.address_a, question.subject, reply))
    request, answer = items(world.a)
    assert answer.kind == "reply" and answer.parent_id == request.id
    assert request.status == "created"
    task = db.session.get(Task, request.task_id)
    assert task.fields["holder_name"] == "City of Springfield"
    assert "We need these" not in request.body  # the quoted history is not merged
    assert sorted(d.filename for d in task.documents) == ["message.eml", "message.eml"]


def test_a_second_incomplete_reply_goes_to_a_lead(world, smtp, redis_conn):
    coi_rule(world)
    add_rule(world.a, world.lead, "Ask", [{"subject": "check:missing_required", "op": "is_true"}],
             [{"type": "request_info", "value": "Missing: {missing_fields}"}])
    db.session.commit()
    smtp.send(email(world.address_a, "Certificate", "Named insured: Acme"))
    [item] = items(world.a)
    reply_to = f"{world.a.code.lower()}+q-{item.public_id}@intake.localhost"
    smtp.send(email(reply_to, "Re: Certificate", "Sorry, I do not have it."))
    request, _reply = items(world.a)
    assert request.status == "triage"
    assert request.problems[0].startswith("Still incomplete after asking the client")
    assert len(outbox_to("broker@agency-a.test")) == 1  # asked once, never in a loop


def test_automated_mail_is_never_answered(world, smtp, redis_conn):
    coi_rule(world)
    add_rule(world.a, world.lead, "Ask", [{"subject": "check:missing_required", "op": "is_true"}],
             [{"type": "request_info", "value": "Missing: {missing_fields}"}])
    db.session.commit()
    smtp.send(email(world.address_a, "Certificate", "Named insured: Acme",
                    headers={"Auto-Submitted": "auto-generated"}))
    [item] = items(world.a)
    assert item.status == "triage" and outbox_to("broker@agency-a.test") == []


def test_replies_to_a_task_thread_become_messages(world, smtp, redis_conn):
    task = gen_task(world.a, world.coi, status=Status.QUEUED, external_ref="R-1")
    db.session.commit()
    plus = f"{world.a.code.lower()}+{task.public_id}@intake.localhost"
    smtp.send(email(plus, "Re: your certificate", "Please also add the landlord.\n\n> old text",
                    attachments=[("lease.pdf", "application/pdf", PDF)]))
    smtp.send(email(world.address_a, f"Re: Received [TL-{task.public_id[:10]}]",
                    "One more thing.", sender=world.user_a.email))
    db.session.expire_all()
    messages = db.session.scalars(select(Message).where(Message.task_id == task.id)
                                  .order_by(Message.id)).all()
    assert [m.kind for m in messages] == [MessageKind.MESSAGE, MessageKind.MESSAGE]
    assert messages[0].body == "[e-mail from broker@agency-a.test]\nPlease also add the landlord."
    assert messages[0].author_id is None
    assert messages[1].author_id == world.user_a.id and messages[1].body == "One more thing."
    assert [d.filename for d in task.documents] == ["lease.pdf"]
    assert all(i.status == "threaded" and i.task_id == task.id for i in items(world.a))


def test_a_reply_answers_an_open_info_request_and_resumes_work(world, smtp, redis_conn):
    specialist = gen_user(Role.SPECIALIST)
    task = gen_task(world.a, world.coi, status=Status.IN_PROGRESS, assignee=specialist)
    request_info(task, "Which holder address?", specialist)
    db.session.commit()
    assert task.status == Status.PENDING_CLIENT
    smtp.send(email(f"{world.a.code.lower()}+{task.public_id}@intake.localhost",
                    "Re: question", "1 Main St, Springfield", sender=world.user_a.email))
    db.session.expire_all()
    assert task.status == Status.IN_PROGRESS and task.sla_paused_since is None
    kinds = [m.kind for m in db.session.scalars(select(Message).where(
        Message.task_id == task.id).order_by(Message.id))]
    assert kinds == [MessageKind.INFO_REQUEST, MessageKind.INFO_RESPONSE]


def test_another_clients_task_cannot_be_reached_by_its_token(world, smtp, redis_conn):
    foreign = gen_task(world.b, world.coi, status=Status.QUEUED)
    db.session.commit()
    smtp.send(email(world.address_a, f"Re: [TL-{foreign.public_id[:10]}]", "sneaky"))
    [item] = items(world.a)
    assert item.status == "triage" and item.task_id is None
    assert db.session.scalar(select(func.count()).select_from(Message).where(
        Message.task_id == foreign.id)) == 0


def test_a_mislabelled_attachment_is_not_stored_and_noted(world, smtp, redis_conn):
    coi_rule(world)
    db.session.commit()
    smtp.send(email(world.address_a, "COI", COI_BODY,
                    attachments=[("invoice.pdf", "application/pdf", b"MZ\x90\x00binary")]))
    [item] = items(world.a)
    assert "mislabelled" in item.attachments[0]["problem"]
    task = db.session.get(Task, item.task_id)
    assert [d.filename for d in task.documents] == ["message.eml"]
    note = db.session.scalar(select(Message).where(Message.task_id == task.id,
                                                   Message.internal.is_(True)))
    assert "invoice.pdf" in note.body


def test_rules_tag_and_prioritise_email_tasks(world, smtp, redis_conn):
    coi_rule(world)
    add_rule(world.a, world.lead, "Rush words",
             [{"subject": "text", "op": "any_of", "value": "urgent, asap, closing today"}],
             [{"type": "set_priority", "value": "urgent"}, {"type": "add_tag", "value": "rush"}])
    db.session.commit()
    smtp.send(email(world.address_a, "COI needed ASAP", COI_BODY))
    [item] = items(world.a)
    task = db.session.get(Task, item.task_id)
    assert task.priority == "urgent" and task.sla_target_hours == 1.0
    assert db.session.scalars(select(TaskTag.tag).where(TaskTag.task_id == task.id)).all() == [
        "rush"]
    assert item.rule_notes == ["Certificates", "Rush words"]


def test_stored_raw_messages_are_removed_when_the_transaction_fails(world, smtp, app,
                                                                   monkeypatch, redis_conn):
    from pathlib import Path

    from provider_app.integrations import email_intake

    def explode(*args, **kwargs):
        raise RuntimeError("database went away")

    def stored() -> set:
        return set((Path(app.config["UPLOAD_DIR"]) / "inbound").rglob("*.eml"))

    before = stored()
    monkeypatch.setattr(email_intake, "decide", explode)
    with pytest.raises(smtplib.SMTPDataError) as failed:
        smtp.send(email(world.address_a, "COI", COI_BODY))
    assert failed.value.smtp_code == 451  # the sending MTA keeps it and retries
    assert items(world.a) == []
    assert stored() == before
    assert db.session.scalar(select(func.count()).select_from(Document)) == 0
