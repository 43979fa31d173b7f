"""E-mail intake: one received message becomes a task, a reply on a thread, or a triage item.

``process_message`` is what the SMTP receiver calls, once per message, inside an app context;
it commits (one transaction per message) or rolls everything back, stored files included.
For each client the message is addressed to:

1. A Message-ID already seen for that client is a duplicate delivery: counted, nothing else
   (``inbound_emails`` is unique on client and Message-ID, so even two deliveries at the
   same moment cannot both pass).
2. The sender must be allowed (``intake_senders``, or an active user of the client);
   otherwise the message is refused (SMTP 550) and only its headers are kept.
3. A plus-address or a ``[TL-…]`` subject token names a thread: a task (the text becomes a
   message on it, or the answer to its open info request, which resumes the work), or a
   request we asked a question about (the reply is merged and the request decided again).
4. Anything else is a new request: the client's rules propose the task type and may ask
   for missing information first; a complete request becomes a task through
   ``intake.service.create_task`` (source ``email``), the raw message and its attachments
   stored as documents through the intake document checks. The rest waits in the triage
   queue for a lead (``triage``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from sla.models import OutboxEmail

from ..audit import record
from ..conversation import answer_info, open_info_request, post_message
from ..db_types import utcnow
from ..extensions import db
from ..intake import documents, service
from ..intake.fields import ENVELOPE_SPECS, clean_all, specs_from
from ..intake.schemas import TaskInput
from ..jobs import enqueue_after_commit
from ..models import Client, Task, TaskType, User
from ..vocab import Status
from . import addresses, automation, mail, rules, storage
from .models import InboundEmail, IntakeSender

MAX_MESSAGE_TEXT = 10_000
OPEN_ITEM_STATUSES = ("triage", "awaiting_info")
AUTO_REPLY_HEADERS = ("auto-submitted", "precedence", "x-autoreply", "x-autorespond")


class TriageError(ValueError):
    """A triage decision that cannot be made (already decided, bad input)."""

    def __init__(self, message: str, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.errors = errors or {}


@dataclass
class Delivery:
    """What happened to one message, for the SMTP reply and the tests."""

    items: list[InboundEmail] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    @property
    def smtp_reply(self) -> str:
        if any(o != "rejected" for o in self.outcomes):
            return "250 2.0.0 Message accepted"
        return "550 5.7.1 Sender not allowed to send work to this address"


# --- the entry point ----------------------------------------------------------------------


def process_message(raw: bytes, mail_from: str, rcpt_tos: Iterable[str]) -> Delivery:
    """Handle one message for every client it is addressed to; commits (or rolls back)."""
    try:
        result = receive(raw, mail_from, rcpt_tos)
        db.session.commit()
        return result
    except Exception:
        db.session.rollback()
        raise


def recipient_client(address: str) -> tuple[addresses.Recipient, Client] | None:
    """The active client an intake address belongs to (the SMTP RCPT check), or None."""
    recipient = addresses.parse_recipient(address)
    if recipient is None:
        return None
    client = db.session.scalar(select(Client).where(
        func.lower(Client.code) == recipient.code, Client.active.is_(True)))
    return (recipient, client) if client is not None else None


def receive(raw: bytes, mail_from: str, rcpt_tos: Iterable[str]) -> Delivery:
    """Flushed, not committed: ``process_message`` is the transaction boundary."""
    parsed = mail.parse(raw)
    auto = _is_auto_reply(raw)
    result = Delivery()
    seen: set[int] = set()
    for address in rcpt_tos:
        found = recipient_client(address)
        if found is None or found[1].id in seen:
            continue
        recipient, client = found
        seen.add(client.id)
        item, outcome = _receive_for(client, recipient, address, parsed, raw, auto)
        result.items.append(item)
        result.outcomes.append(outcome)
    return result


def _is_auto_reply(raw: bytes) -> bool:
    """RFC 3834: never answer automated mail (no acknowledgements, no questions)."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].lower()
    for line in head.splitlines():
        name, _, value = line.partition(b":")
        name_text, value_text = name.decode("latin-1").strip(), value.decode("latin-1").strip()
        if name_text == "auto-submitted" and value_text != "no":
            return True
        if name_text == "precedence" and value_text in ("bulk", "junk", "list", "auto_reply"):
            return True
        if name_text in ("x-autoreply", "x-autorespond"):
            return True
    return False


def _receive_for(client: Client, recipient: addresses.Recipient, address: str,
                 parsed: mail.ParsedEmail, raw: bytes, auto: bool) -> tuple[InboundEmail, str]:
    item = InboundEmail(client_id=client.id, message_id=parsed.message_id, sender=parsed.sender,
                        sender_name=parsed.sender_name, recipient=address.lower()[:254],
                        subject=parsed.subject, raw_size=len(raw), status="triage")
    try:
        with db.session.begin_nested():
            db.session.add(item)
    except IntegrityError:
        return _repeat_delivery(client, parsed), "duplicate"
    if not sender_allowed(client.id, parsed.sender):
        item.status = "rejected"
        item.problems = [f"The sender {parsed.sender or '(none)'} is not on {client.code}'s list "
                         "of allowed senders."]
        record("email.rejected", object_type="inbound_email", object_id=item.id,
               client_id=client.id, reason=item.problems[0][:500],
               after={"subject": parsed.subject[:200], "message_id": parsed.message_id})
        return item, "rejected"
    item.body = parsed.body[:200_000]
    item.raw_storage, item.raw_sha256 = storage.store_raw(raw)
    item.attachments = [_attachment_summary(a) for a in parsed.attachments]
    record("email.received", object_type="inbound_email", object_id=item.id,
           client_id=client.id, after={"subject": parsed.subject[:200], "sender": parsed.sender,
                                       "message_id": parsed.message_id,
                                       "attachments": len(parsed.attachments)})
    task, request = _thread_target(client, recipient, parsed.subject)
    if task is not None:
        _reply_to_task(item, task, parsed)
        return item, "threaded"
    if request is not None:
        return _reply_to_request(item, request, parsed, auto)
    decide(item, auto=auto, parsed={item.raw_storage: (raw, parsed)})
    return item, item.status


def _repeat_delivery(client: Client, parsed: mail.ParsedEmail) -> InboundEmail:
    existing = db.session.scalar(select(InboundEmail).where(
        InboundEmail.client_id == client.id, InboundEmail.message_id == parsed.message_id))
    db.session.execute(
        update(InboundEmail).where(InboundEmail.id == existing.id)
        .values(deliveries=InboundEmail.deliveries + 1, last_delivered_at=utcnow())
        .execution_options(synchronize_session=False))
    db.session.refresh(existing)
    record("email.duplicate", object_type="inbound_email", object_id=existing.id,
           client_id=client.id, reason=f"Message-ID {parsed.message_id} delivered again",
           after={"deliveries": existing.deliveries})
    return existing


def _attachment_summary(attachment: mail.Attachment) -> dict[str, Any]:
    problem = None
    try:
        documents.discard(_prepare(attachment))
    except documents.DocumentRefused as exc:
        problem = str(exc)
    return {"filename": documents.display_name(attachment.filename),
            "content_type": attachment.content_type, "size": len(attachment.data),
            "problem": problem}


def _prepare(attachment: mail.Attachment) -> documents.PreparedDocument:
    return documents.prepare(io.BytesIO(attachment.data), attachment.filename,
                             attachment.content_type)


# --- who may send -------------------------------------------------------------------------


def sender_allowed(client_id: int, address: str) -> bool:
    """An allowed address or domain of the client, or one of the client's active users."""
    address = (address or "").strip().lower()
    if "@" not in address:
        return False
    domain = "@" + address.rpartition("@")[2]
    listed = db.session.scalar(select(IntakeSender.id).where(
        IntakeSender.client_id == client_id, IntakeSender.pattern.in_([address, domain]))
        .limit(1))
    return listed is not None or client_user(client_id, address) is not None


def client_user(client_id: int, address: str) -> User | None:
    return db.session.scalar(select(User).where(
        User.client_id == client_id, func.lower(User.email) == address.lower(),
        User.active.is_(True)))


# --- threads --------------------------------------------------------------------------------


def _by_prefix(model: type, client_id: int, full: str | None, prefix: str | None, *extra):
    if full:
        stmt = select(model).where(model.client_id == client_id, model.public_id == full)
    elif prefix:
        stmt = select(model).where(model.client_id == client_id,
                                   model.public_id.like(prefix + "%"))
    else:
        return None
    rows = db.session.scalars(stmt.where(*extra).limit(2)).all()
    return rows[0] if len(rows) == 1 else None


def _thread_target(client: Client, recipient: addresses.Recipient,
                   subject: str) -> tuple[Task | None, InboundEmail | None]:
    task_prefix, request_prefix = addresses.subject_tokens(subject)
    task = _by_prefix(Task, client.id, recipient.task_public_id, task_prefix)
    if task is not None:
        return task, None
    request = _by_prefix(InboundEmail, client.id, recipient.request_public_id, request_prefix,
                         InboundEmail.kind == "request")
    return None, request


def _reply_to_task(item: InboundEmail, task: Task, parsed: mail.ParsedEmail) -> None:
    """The reply becomes a message on the task, or the answer that resumes it."""
    author = client_user(task.client_id, parsed.sender)
    text = mail.strip_quoted(parsed.body) or ("(attachments only)" if parsed.attachments
                                              else "(empty reply)")
    if author is None:
        text = f"[e-mail from {parsed.sender}]\n{text}"
    text = text[:MAX_MESSAGE_TEXT]
    pending = Status(task.status) == Status.PENDING_CLIENT and open_info_request(task)
    if pending:
        answer_info(task, text, author)
    else:
        post_message(task, text, author)
    _attach_parts(task, parsed.attachments, author)
    item.kind, item.status, item.task_id = "reply", "threaded", task.id
    record("email.threaded", object_type="task", object_id=task.id, client_id=task.client_id,
           actor=author, reason="answer to an info request" if pending else "reply by e-mail",
           after={"inbound_email_id": item.id})


def _reply_to_request(item: InboundEmail, request: InboundEmail, parsed: mail.ParsedEmail,
                      auto: bool) -> tuple[InboundEmail, str]:
    item.kind, item.parent_id = "reply", request.id
    if request.status == "created" and request.task is not None:
        _reply_to_task(item, request.task, parsed)
        return item, "threaded"
    if request.status not in OPEN_ITEM_STATUSES:
        item.kind, item.parent_id = "request", None
        decide(item, auto=auto)
        return item, item.status
    item.status = "threaded"
    reply_text = mail.strip_quoted(parsed.body)
    request.body = (f"{request.body}\n\n--- reply from {parsed.sender} "
                    f"({utcnow():%Y-%m-%d %H:%M} UTC) ---\n{reply_text}")[:200_000]
    request.attachments = [*request.attachments, *item.attachments]
    record("email.request_reply", object_type="inbound_email", object_id=request.id,
           client_id=request.client_id, after={"reply_id": item.id})
    decide(request, auto=auto, asked_before=True)
    return item, "threaded"


# --- deciding a request -----------------------------------------------------------------------


def _texts(item: InboundEmail) -> tuple[dict[str, str], dict[str, str]]:
    pairs = mail.extract_pairs(f"{item.subject}\n{item.body}")
    return pairs, mail.envelope_from(pairs)


def decide(item: InboundEmail, *, auto: bool = False, asked_before: bool = False,
           parsed: dict[str, tuple[bytes, mail.ParsedEmail]] | None = None) -> None:
    """Run the client's rules over a request and create the task, ask, or triage it.

    ``parsed`` hands over messages already parsed (by storage name), to parse them once."""
    pairs, envelope = _texts(item)
    context_types: dict[str, TaskType | None] = {}

    def type_for(code: str | None) -> TaskType | None:
        if code and code not in context_types:
            context_types[code] = service.find_task_type(code)
        return context_types.get(code) if code else None

    def fields_for(code: str | None) -> Mapping[str, Any]:
        task_type = type_for(code)
        if task_type is None:
            return dict(pairs)
        return mail.fields_for_type(pairs, task_type.intake_schema)

    facts = rules.Facts(priority=(envelope.get("priority") or "normal").lower(), source="email",
                        sender=item.sender, subject=item.subject, body=item.body,
                        reference=envelope.get("external_ref", ""))
    outcome = automation.evaluate_for(item.client_id, facts, fields_for)
    task_type = type_for(outcome.task_type)
    item.proposed_task_type_id = task_type.id if task_type else None
    item.proposed = {**envelope, **({"priority": outcome.priority} if outcome.priority else {}),
                     "fields": dict(fields_for(outcome.task_type))}
    item.rule_notes = list(outcome.hit_names)
    problems: list[str] = [f"{a['filename']}: {a['problem']}" for a in item.attachments
                           if a.get("problem")]
    if task_type is None:
        why = (f"Rules proposed the unknown task type {outcome.task_type}."
               if outcome.task_type else "No routing rule chose a task type.")
        return _to_triage(item, [why, *problems])
    if outcome.triage:
        return _to_triage(item, [*outcome.triage, *problems])
    if outcome.info_requests:
        if asked_before or auto or not item.sender:
            return _to_triage(item, ["Still incomplete after asking the client: "
                                     + " ".join(outcome.info_requests), *problems])
        return _ask_sender(item, outcome.info_requests)
    data, errors = task_input(task_type, item.proposed)
    if data is None:
        listed = [f"{name}: {message}" for name, message in errors.items()]
        return _to_triage(item, ["Fields need a lead's attention: " + "; ".join(listed),
                                 *problems])
    create_from_item(item, data, actor=None, outcome=outcome, acknowledge=not auto,
                     parsed=parsed)


def task_input(task_type: TaskType, proposed: Mapping[str, Any]
               ) -> tuple[TaskInput | None, dict[str, str]]:
    """Check text values with the task type's field rules (the CSV path: values as text)."""
    envelope, errors = clean_all(ENVELOPE_SPECS, proposed, text=True)
    values, field_errors = clean_all(specs_from(task_type.intake_schema),
                                     proposed.get("fields") or {}, text=True)
    errors.update({f"fields.{name}": message for name, message in field_errors.items()})
    if errors:
        return None, errors
    return TaskInput(task_type=task_type, priority=envelope.get("priority", "normal"),
                     external_ref=envelope.get("external_ref"), state=envelope.get("state"),
                     fields=values), {}


def _to_triage(item: InboundEmail, problems: list[str]) -> None:
    item.status = "triage"
    item.problems = [p[:1000] for p in problems if p]
    record("email.triage", object_type="inbound_email", object_id=item.id,
           client_id=item.client_id, reason="; ".join(item.problems)[:500] or None)


def _ask_sender(item: InboundEmail, questions: list[str]) -> None:
    """Hold the request (no task, no SLA clock yet) and ask the sender for what is missing."""
    item.status = "awaiting_info"
    item.problems = ["Waiting for the client: " + " ".join(questions)][:1]
    client = db.session.get(Client, item.client_id)
    reply_to = addresses.request_reply_address(client, item.public_id)
    body = "\n\n".join([
        *questions,
        f"Please reply to this e-mail, keeping {addresses.request_token(item.public_id)} in "
        f"the subject, or write to {reply_to}. We start work as soon as we have it.",
    ])
    queue_email(item.sender, mail.reply_subject(item.subject,
                                                addresses.request_token(item.public_id)), body)
    record("email.info_requested", object_type="inbound_email", object_id=item.id,
           client_id=item.client_id, reason=" ".join(questions)[:500])


def queue_email(to: str, subject: str, body: str) -> None:
    """An e-mail through the SLA area's outbox (sent by ``sla.notify.send_outbox``)."""
    db.session.add(OutboxEmail(to_address=to[:254], subject=subject[:300], body=body))
    if current_app.config.get("SMTP_URL"):
        enqueue_after_commit("sla.notify.send_outbox", queue="low")


# --- creating the task --------------------------------------------------------------------------


def _parsed_messages(item: InboundEmail, known: dict[str, tuple[bytes, mail.ParsedEmail]]
                     ) -> list[tuple[bytes, mail.ParsedEmail]]:
    """The request's raw message and those of the replies merged into it."""
    rows = [item, *db.session.scalars(select(InboundEmail).where(
        InboundEmail.parent_id == item.id, InboundEmail.status == "threaded")
        .order_by(InboundEmail.id))]
    found = []
    for row in rows:
        if row.raw_storage in known:
            found.append(known[row.raw_storage])
        elif (raw := storage.read_raw(row.raw_storage)) is not None:
            found.append((raw, mail.parse(raw)))
    return found


def create_from_item(item: InboundEmail, data: TaskInput, *, actor: User | None,
                     outcome: rules.Outcome | None = None, acknowledge: bool = True,
                     parsed: dict[str, tuple[bytes, mail.ParsedEmail]] | None = None) -> Task:
    """Create the task for a request (automatically, or a lead's triage decision).

    Only a request still open is turned into a task, claimed with one conditional UPDATE so
    two leads (or a lead and a late reply) cannot both create it.
    """
    db.session.flush()
    claimed = db.session.execute(
        update(InboundEmail)
        .where(InboundEmail.id == item.id, InboundEmail.status.in_(OPEN_ITEM_STATUSES))
        .values(status="created", decided_at=utcnow(),
                decided_by_id=actor.id if actor is not None else None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise TriageError("This e-mail has already been dealt with.")
    db.session.refresh(item)
    client = db.session.get(Client, item.client_id)
    sender_user = client_user(client.id, item.sender)
    prepared, refused = [], []
    messages = _parsed_messages(item, parsed or {})
    try:
        for _raw, parsed in messages:
            for attachment in parsed.attachments:
                try:
                    prepared.append(_prepare(attachment))
                except documents.DocumentRefused as exc:
                    refused.append(str(exc))
        task = service.create_task(client, data, actor=actor or sender_user, source="email",
                                   attachments=prepared)
    except BaseException:
        for p in prepared:
            documents.discard(p)
        raise
    for raw, _parsed in messages:
        _attach_raw(task, raw, actor or sender_user)
    if refused:
        from ..conversation import add_note

        add_note(task, "Attachments not stored from the e-mail: " + "; ".join(refused), None)
    item.task_id = task.id
    item.problems = []
    record("email.task_created", object_type="task", object_id=task.id, client_id=client.id,
           actor=actor, after={"inbound_email_id": item.id, "by": "lead" if actor else "rules"})
    automation.apply_intake_rules(task, "email", outcome=outcome, sender=item.sender,
                                  subject=item.subject, body=item.body)
    if acknowledge and item.sender:
        queue_email(item.sender, mail.reply_subject(item.subject, addresses.task_token(task)),
                    f"We have your request and it is now task {addresses.task_token(task)} "
                    f"({data.task_type.name}).\n\nReplies to this e-mail are added to the task; "
                    f"you can also write to {addresses.reply_address(task)}.")
    return task


def _attach_raw(task: Task, raw: bytes, actor: User | None) -> None:
    try:
        prepared = documents.prepare(io.BytesIO(raw), "message.eml", "message/rfc822")
    except documents.DocumentRefused as exc:
        current_app.logger.warning("raw e-mail of task %s not stored as a document: %s",
                                   task.id, exc)
        return
    documents.attach(task, prepared, actor=actor, kind="email")


def _attach_parts(task: Task, parts: Iterable[mail.Attachment], actor: User | None) -> None:
    refused = []
    for attachment in parts:
        try:
            documents.attach(task, _prepare(attachment), actor=actor)
        except documents.DocumentRefused as exc:
            refused.append(str(exc))
    if refused:
        post_message(task, "Some attachments could not be accepted: " + "; ".join(refused),
                     None)


# --- lead decisions -------------------------------------------------------------------------------


def reject(item: InboundEmail, note: str, actor: User) -> None:
    _decide_other(item, "rejected", note, actor)


def mark_duplicate(item: InboundEmail, task: Task, actor: User) -> None:
    if task.client_id != item.client_id:
        raise TriageError("Choose a task of the same client.", {"task": ["Unknown task."]})
    _decide_other(item, "duplicate", f"duplicate of task {task.public_id}", actor)
    item.task_id = task.id


def _decide_other(item: InboundEmail, status: str, note: str, actor: User) -> None:
    note = (note or "").strip()
    if not note:
        raise TriageError("Say why.", {"note": ["Say why, for the audit trail."]})
    db.session.flush()
    moved = db.session.execute(
        update(InboundEmail)
        .where(InboundEmail.id == item.id, InboundEmail.status.in_(OPEN_ITEM_STATUSES))
        .values(status=status, decided_at=utcnow(), decided_by_id=actor.id,
                decision_note=note[:2000])
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise TriageError("This e-mail has already been dealt with.")
    db.session.refresh(item)
    record(f"email.{status}", object_type="inbound_email", object_id=item.id,
           client_id=item.client_id, actor=actor, reason=note[:500])
