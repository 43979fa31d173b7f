"""Who hears about an escalation, in the app and by e-mail, and the outbox sender.

Audiences by level (see docs/SLA.md):

1. team leads who may see the client (no client restriction, or one naming it);
2. provider admins, acting as operations managers;
3. provider admins, and the client's own ``client_admin`` users (the account
   owner on the client side), who get a client-safe wording and a portal link.

The escalation's owner, when it has one, hears about everything on it.
Notification rows and outbox e-mails are written in the caller's transaction,
so they exist exactly when the escalation change commits; the ``send_outbox``
job delivers the e-mails later, and only when ``SMTP_URL`` is configured.
"""

from __future__ import annotations

import smtplib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app
from sqlalchemy import (
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)

from provider_app.db_types import UTCDateTime, utcnow
from provider_app.extensions import db
from provider_app.jobs import enqueue_after_commit
from provider_app.models import Client, StaffClient, Task, User, UserRole
from provider_app.vocab import EscalationReason, Role

from .models import Escalation, Notification, OutboxEmail
from .sql import random_public_id

OPENED, RAISED, ASSIGNED = "opened", "raised", "assigned"
MAX_ATTEMPTS = 5
DIGEST_LINES = 50
_CLIENT_WORDING = {
    EscalationReason.SLA_AT_RISK: "is at risk of missing its turnaround time",
    EscalationReason.SLA_BREACHED: "is past its turnaround time",
    EscalationReason.CLIENT_COMPLAINT: "has an open complaint from your team",
}


@dataclass
class Recipient:
    user_id: int
    client_side: bool = False
    # None: every client; otherwise the clients this person may see.
    client_ids: set[int] | None = field(default=None)

    def sees(self, client_id: int) -> bool:
        return self.client_ids is None or client_id in self.client_ids


def path_for(endpoint: str, **values: str) -> str:
    """A site-relative URL that also works in jobs, outside any request."""
    return current_app.url_map.bind("").build(endpoint, values)


# --- audiences ------------------------------------------------------------------------


def _with_role(role: Role):
    return select(UserRole.user_id).where(UserRole.role == role)


def audience(level: int, client_ids: Iterable[int]) -> list[Recipient]:
    """Everyone to tell about an escalation at ``level`` for these clients."""
    client_ids = set(client_ids)
    provider = (User.active.is_(True), User.client_id.is_(None))
    people: dict[int, Recipient] = {}
    if level == 1:
        rows = db.session.execute(
            select(User.id, StaffClient.client_id)
            .outerjoin(StaffClient, StaffClient.staff_id == User.id)
            .where(*provider, User.id.in_(_with_role(Role.TEAM_LEAD)))
        )
        links: dict[int, set[int]] = defaultdict(set)
        for user_id, client_id in rows:
            people.setdefault(user_id, Recipient(user_id))
            if client_id is not None:
                links[user_id].add(client_id)
        for user_id, clients in links.items():
            people[user_id].client_ids = clients
    else:
        for user_id in db.session.scalars(
            select(User.id).where(*provider, User.id.in_(_with_role(Role.ADMIN)))
        ):
            people[user_id] = Recipient(user_id)
    if level >= 3 and client_ids:
        for user_id, client_id in db.session.execute(
            select(User.id, User.client_id).where(
                User.active.is_(True),
                User.client_id.in_(client_ids),
                User.id.in_(_with_role(Role.CLIENT_ADMIN)),
            )
        ):
            people[user_id] = Recipient(user_id, client_side=True, client_ids={client_id})
    return [p for p in people.values() if any(p.sees(c) for c in client_ids)]


# --- notifying ------------------------------------------------------------------------


def notify(escalation_ids: Iterable[int], event: str, *, now: datetime | None = None) -> int:
    """Write notifications (and their e-mails) about these escalations; returns how many.

    ``event`` is ``opened`` or ``raised`` (the escalation's current level picks
    the audience) or ``assigned`` (only the owner hears). The rows are made by
    one INSERT ... SELECT joining the escalations to their recipients, so a
    sweep batch costs a statement, not a Python loop per notice. The caller
    bounds ``escalation_ids`` (the sweep passes one batch at a time).
    """
    now = now or utcnow()
    ids = list(escalation_ids)
    recipients = _recipients(ids, event) if ids else []
    if not recipients:
        return 0
    r = union_all(*(
        select(literal(p.user_id).label("user_id"),
               literal(client_id, Integer).label("client_id"),
               literal(escalation_id, Integer).label("escalation_id"),
               literal(level).label("level"),
               literal(p.client_side).label("client_side"))
        for p, client_id, escalation_id, level in recipients
    )).subquery("r")
    text_, link = _wording(event, r.c.client_side)
    rows = (
        select(random_public_id(), r.c.user_id, Escalation.id, text_, link,
               literal(now, UTCDateTime()))
        .select_from(Escalation)
        .join(Task, Task.id == Escalation.task_id)
        .join(Client, Client.id == Escalation.client_id)
        .join(r, and_(
            r.c.level == Escalation.level,
            or_(r.c.client_id.is_(None), r.c.client_id == Escalation.client_id),
            or_(r.c.escalation_id.is_(None), r.c.escalation_id == Escalation.id),
        ))
        .where(Escalation.id.in_(ids))
    )
    table = Notification.__table__
    written = db.session.execute(
        insert(table)
        .from_select(["public_id", "user_id", "escalation_id", "text", "link", "created_at"], rows)
        .returning(table.c.user_id, table.c.escalation_id, table.c.text, table.c.link)
    ).all()
    _queue_emails(written, now)
    return len(written)


def _recipients(ids: list[int], event: str) -> list[tuple[Recipient, int | None, int | None, int]]:
    """``(person, client_id or None for all, escalation_id or None for all, level)`` rows."""
    entries: list[tuple[Recipient, int | None, int | None, int]] = []
    if event != ASSIGNED:
        pairs = db.session.execute(
            select(Escalation.level, Escalation.client_id).where(Escalation.id.in_(ids)).distinct()
        ).all()
        for level in {lvl for lvl, _ in pairs}:
            clients = {c for lvl, c in pairs if lvl == level}
            for person in audience(level, clients):
                scope = [None] if person.client_ids is None else sorted(person.client_ids & clients)
                entries.extend((person, client_id, None, level) for client_id in scope)
    if event == OPENED:
        return entries  # nobody owns an escalation yet when it opens
    owned = db.session.execute(
        select(Escalation.id, Escalation.level, Escalation.client_id, User.id)
        .join(User, User.id == Escalation.owner_id)
        .where(Escalation.id.in_(ids), User.active.is_(True))
    ).all()
    for escalation_id, level, client_id, user_id in owned:
        already = any(p.user_id == user_id and lvl == level and c in (None, client_id)
                      for p, c, _, lvl in entries)
        if not already:
            entries.append((Recipient(user_id), client_id, escalation_id, level))
    return entries


def _wording(event: str, client_side) -> tuple:
    """SQL for the notice's text and link; client-side readers see client-facing facts only."""
    ref = func.coalesce(Task.external_ref, func.substr(Task.public_id, 1, 8))
    reason = func.replace(cast(Escalation.reason, String), "_", " ", type_=String)
    level = cast(Escalation.level, String)
    subject = reason + " on " + Client.code + " task " + ref
    provider = {
        OPENED: literal("New escalation (level ") + level + "): " + subject,
        RAISED: literal("Escalation raised to level ") + level
        + ", not acknowledged in time: " + subject,
        ASSIGNED: literal("Escalation assigned to you: ") + subject,
    }[event]
    wording = case(
        *((Escalation.reason == reason_, text) for reason_, text in _CLIENT_WORDING.items()),
        else_="needs attention",
    )
    client = (literal("Task ") + ref + " " + wording
              + "; it has been escalated to your account owner.")
    # Paths built once from the URL map (jobs have no request), then joined with the ids.
    escalation_path = path_for("sla.escalation", public_id="-").removesuffix("-")
    task_path = path_for("portal.task_detail", public_id="-").removesuffix("-")
    return (
        case((client_side, client), else_=provider),
        case((client_side, literal(task_path) + Task.public_id),
             else_=literal(escalation_path) + Escalation.public_id),
    )


def _queue_emails(written: list, now: datetime) -> None:
    """One e-mail per recipient per call: a digest when the sweep opens many at once."""
    by_user: dict[int, list] = defaultdict(list)
    for row in sorted(written, key=lambda row: (row.user_id, row.escalation_id)):
        by_user[row.user_id].append(row)
    if not by_user:
        return
    addresses = dict(db.session.execute(
        select(User.id, User.email).where(User.id.in_(by_user))).all())
    emails = []
    for user_id, items in by_user.items():
        subject = items[0].text if len(items) == 1 else (
            f"{len(items)} escalations need your attention")
        body = [f"- {item.text}\n  {item.link}" for item in items[:DIGEST_LINES]]
        if len(items) > DIGEST_LINES:
            body.append(f"…and {len(items) - DIGEST_LINES} more.")
        emails.append({"to_address": addresses[user_id], "subject": subject[:300],
                       "body": "\n".join([*body, "", "Sign in to Throughline to act on them."]),
                       "created_at": now, "attempts": 0})
    db.session.execute(insert(OutboxEmail.__table__), emails)
    if current_app.config.get("SMTP_URL"):
        enqueue_after_commit("sla.notify.send_outbox", queue="low")


# --- the in-app list ------------------------------------------------------------------


def unread_count(user: User) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Notification).where(
            Notification.user_id == user.id, Notification.read_at.is_(None)
        )
    )


def mark_read(notification: Notification, now: datetime | None = None) -> None:
    if notification.read_at is None:
        notification.read_at = now or utcnow()
        db.session.flush()


def mark_all_read(user: User, now: datetime | None = None) -> int:
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


# --- delivery -------------------------------------------------------------------------


def send_outbox(limit: int = 200) -> int:
    """Send unsent outbox e-mails over SMTP; returns how many went out.

    Nothing happens without ``SMTP_URL``: mail waits in the table. Each message
    is committed on its own (an exception to the job-boundary commit) because
    sending is a side effect that cannot be rolled back: a crash half-way must
    not make the next run send the first half again. On PostgreSQL, rows are
    claimed with SKIP LOCKED so two workers never send the same message.
    """
    url = current_app.config.get("SMTP_URL")
    if not url:
        return 0
    ids = db.session.scalars(
        select(OutboxEmail.id)
        .where(OutboxEmail.sent_at.is_(None), OutboxEmail.attempts < MAX_ATTEMPTS)
        .order_by(OutboxEmail.id)
        .limit(limit)
    ).all()
    sent = 0
    if not ids:
        return 0
    sender = current_app.config.get("MAIL_FROM", "throughline@localhost")
    with _smtp(url) as smtp:
        for email_id in ids:
            email = db.session.scalar(
                select(OutboxEmail)
                .where(OutboxEmail.id == email_id, OutboxEmail.sent_at.is_(None))
                .with_for_update(skip_locked=True)
            )
            if email is None:
                continue  # another worker sent or holds it
            email.attempts += 1
            try:
                smtp.send_message(_mime(email, sender))
            except OSError as exc:  # smtplib's errors are OSErrors too
                email.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                db.session.commit()
                if _connection_lost(exc):
                    break  # the next run retries the rest
                continue
            email.sent_at = utcnow()
            email.last_error = None
            db.session.commit()
            sent += 1
    return sent


def _connection_lost(exc: OSError) -> bool:
    """A refused recipient spoils one message; a dropped connection spoils the rest."""
    return isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(
        exc, smtplib.SMTPException
    )


def _mime(email: OutboxEmail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to_address
    message["Subject"] = email.subject
    message["Date"] = format_datetime(email.created_at)
    # Stable per outbox row, so a receiver can drop a duplicate after a retry.
    message["Message-ID"] = make_msgid(idstring=f"outbox-{email.id}", domain="throughline")
    message.set_content(email.body)
    return message


@contextmanager
def _smtp(url: str) -> Iterator[smtplib.SMTP]:
    """``smtp://[user:pass@]host[:port][?starttls=1]`` or ``smtps://…`` (implicit TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ValueError(f"SMTP_URL must look like smtp://host:port, got {url!r}")
    secure = parts.scheme == "smtps"
    cls = smtplib.SMTP_SSL if secure else smtplib.SMTP
    smtp = cls(parts.hostname, parts.port or (465 if secure else 25), timeout=10)
    try:
        if parse_qs(parts.query).get("starttls", ["0"])[0].lower() in {"1", "true", "yes"}:
            smtp.starttls()
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        yield smtp
    finally:
        try:
            smtp.quit()
        except smtplib.SMTPException:
            smtp.close()
