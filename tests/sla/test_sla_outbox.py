"""E-mail leaves through the outbox: sent to a real local SMTP sink, never without SMTP_URL."""

import socket
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from rq import SimpleWorker
from sqlalchemy import select

from provider_app.jobs import enqueue_now, get_queue
from provider_app.vocab import EscalationReason, Role
from sla.escalations import open_escalation
from sla.models import OutboxEmail
from sla.notify import send_outbox
from tests.factories import gen_client, gen_task, gen_task_type, gen_user


class Sink:
    """Collects what arrives; refuses mail for addresses starting with ``bounce``."""

    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("bounce"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(app, monkeypatch):
    sink, port = Sink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setitem(app.config, "SMTP_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setitem(app.config, "MAIL_FROM", "sla@provider.test")
    yield sink
    controller.stop()


@pytest.fixture
def escalated(db):
    leads = [gen_user(Role.TEAM_LEAD, email="lead1@provider.test"),
             gen_user(Role.TEAM_LEAD, email="lead2@provider.test")]
    task = gen_task(gen_client(), gen_task_type(), external_ref="COI-7")
    open_escalation(task, EscalationReason.SLA_BREACHED)
    return leads


def outbox(db):
    return db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()


def test_nothing_is_sent_without_smtp(app, escalated, db):
    assert app.config["SMTP_URL"] == ""
    assert send_outbox() == 0
    assert [(m.sent_at, m.attempts) for m in outbox(db)] == [(None, 0), (None, 0)]


def test_outbox_is_delivered_to_the_smtp_sink(smtp, escalated, db):
    assert send_outbox() == 2
    recipients = sorted(to for tos, _ in smtp.messages for to in tos)
    assert recipients == ["lead1@provider.test", "lead2@provider.test"]
    message = smtp.messages[0][1]
    assert message["From"] == "sla@provider.test"
    assert "sla breached" in message["Subject"] and "COI-7" in message["Subject"]
    assert "/escalations/" in message.get_payload()
    assert all(m.sent_at is not None and m.attempts == 1 for m in outbox(db))
    assert send_outbox() == 0  # sent once, never again
    assert len(smtp.messages) == 2


def test_a_refused_recipient_is_recorded_and_the_rest_still_go(smtp, db):
    gen_user(Role.TEAM_LEAD, email="bounce@provider.test")
    gen_user(Role.TEAM_LEAD, email="ok@provider.test")
    open_escalation(gen_task(gen_client(), gen_task_type()), EscalationReason.CLIENT_COMPLAINT)
    assert send_outbox() == 1
    bounced, delivered = sorted(outbox(db), key=lambda m: m.to_address)
    assert bounced.sent_at is None and bounced.attempts == 1
    assert "550" in bounced.last_error
    assert delivered.sent_at is not None and delivered.last_error is None


def test_an_unreachable_server_fails_the_job_and_marks_nothing(app, escalated, db, monkeypatch):
    monkeypatch.setitem(app.config, "SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(OSError):
        send_outbox()
    assert [(m.sent_at, m.attempts) for m in outbox(db)] == [(None, 0), (None, 0)]


def test_a_malformed_smtp_url_is_refused(app, escalated, monkeypatch):
    monkeypatch.setitem(app.config, "SMTP_URL", "http://mail")
    with pytest.raises(ValueError, match="SMTP_URL must look like"):
        send_outbox()


def test_the_rq_job_sends(smtp, escalated, db, redis_conn):
    job = enqueue_now("sla.notify.send_outbox", queue="low")
    queue = get_queue("low")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    assert job.return_value() == 2
    assert len(smtp.messages) == 2
