"""Who hears about an escalation, in the app and by e-mail, and the outbox sender.

Audiences by level (see docs/SLA.md):

1. team leads who may see the client (no client restriction, or one naming it);
2. provider admins, acting as operations managers;
3. provider admins, and the client's own ``client_admin`` users (the account
   owner on the client side), who get a client-safe wording and a portal link.

An escalation the sweep opens is handed to the client's own lead (its owner,
``with_first_lead``) and only the owner is told; one opened by a person or
another area (no owner yet) goes to the level-1 audience. A raised level goes to
the new level's audience and the owner, an assignment to the new owner. The
audience is SQL (``audience``), so the sweep joins it inside its own statements.
Notification rows and outbox e-mails are written in the caller's transaction,
so they exist exactly when the escalation change commits; the ``send_outbox``
job delivers the e-mails later, and only when ``SMTP_URL`` is configured.
"""

from __future__ import annotations

import smtplib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app
from sqlalchemy import (
    CTE,
    ColumnElement,
    FromClause,
    Insert,
    Integer,
    Select,
    String,
    Subquery,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    union,
    union_all,
    update,
)

from provider_app.db_types import utcnow
from provider_app.extensions import db
from provider_app.jobs import enqueue_after_commit
from provider_app.models import Client, StaffClient, Task, User, UserRole
from provider_app.vocab import EscalationReason, Role

from .models import TOP_LEVEL, Escalation, Notification, OutboxEmail
from .sql import NOW, random_public_id

OPENED, RAISED, ASSIGNED = "opened", "raised", "assigned"
MAX_ATTEMPTS = 5
DIGEST_LINES = 50
_CLIENT_WORDING = {
    EscalationReason.SLA_AT_RISK: "is at risk of missing its turnaround time",
    EscalationReason.SLA_BREACHED: "is past its turnaround time",
    EscalationReason.CLIENT_COMPLAINT: "has an open complaint from your team",
}


def path_for(endpoint: str, **values: str) -> str:
    """A site-relative URL that also works in jobs, outside any request."""
    return current_app.url_map.bind("").build(endpoint, values)


# --- audiences ------------------------------------------------------------------------


def _with_role(role: Role):
    return select(UserRole.user_id).where(UserRole.role == role)


@cache
def audience() -> CTE:
    """Who hears about escalations, as rows the database joins to escalations.

    Columns: ``user_id``, ``lo`` and ``hi`` (the levels this row covers),
    ``client_id`` (NULL: every client) and ``client_side``. Level 1 goes to
    active team leads who may see the client (no client restriction, or one
    naming it), levels 2 and 3 to active admins, level 3 also to the client's
    active ``client_admin`` users. Being SQL, it runs inside the sweep's
    statements: no per-level queries and no Python loop over people. A
    materialised CTE, so PostgreSQL computes it once, not once per escalation
    (and one object, so every statement that uses it twice names it once).
    """
    provider = (User.active.is_(True), User.client_id.is_(None))
    lead = User.id.in_(_with_role(Role.TEAM_LEAD))
    no_client = cast(null(), Integer)
    return union_all(
        select(User.id.label("user_id"), literal(1).label("lo"), literal(1).label("hi"),
               no_client.label("client_id"), literal(False).label("client_side"))
        .where(*provider, lead, User.id.not_in(select(StaffClient.staff_id))),
        select(User.id, literal(1), literal(1), StaffClient.client_id, literal(False))
        .join(StaffClient, StaffClient.staff_id == User.id).where(*provider, lead),
        select(User.id, literal(2), literal(TOP_LEVEL), no_client, literal(False))
        .where(*provider, User.id.in_(_with_role(Role.ADMIN))),
        select(User.id, literal(TOP_LEVEL), literal(TOP_LEVEL), User.client_id, literal(True))
        .where(User.active.is_(True), User.client_id.is_not(None),
               User.id.in_(_with_role(Role.CLIENT_ADMIN))),
    ).cte("audience").prefix_with("MATERIALIZED", dialect="postgresql")


def eligible_owner_ids(client_id: int) -> Select:
    """Ids of the people an escalation of this client can be handed to: leads and admins."""
    a = audience()
    return select(a.c.user_id).where(
        a.c.lo <= 2, a.c.client_side.is_(False),
        or_(a.c.client_id.is_(None), a.c.client_id == client_id))


def with_first_lead(source: FromClause, client_id) -> tuple[FromClause, ColumnElement]:
    """``source`` joined to its clients' own leads, and the owner column that gives.

    The lead an escalation the sweep opens is handed to: the team lead (lowest
    id) whose client list names the client, else the one who sees every
    client; NULL when no lead may see the client. A join on the client (and
    one uncorrelated look-up), not a sub-select per escalation.
    """
    a = audience()
    pods = (
        select(a.c.client_id, func.min(a.c.user_id).label("user_id"))
        .where(a.c.lo == 1, a.c.client_id.is_not(None))
        .group_by(a.c.client_id)
        .subquery("pods")
    )
    anyone = select(func.min(a.c.user_id)).where(
        a.c.lo == 1, a.c.client_id.is_(None)).scalar_subquery()
    return (source.outerjoin(pods, pods.c.client_id == client_id),
            func.coalesce(pods.c.user_id, anyone))


def _recipients(esc: FromClause, event: str) -> Subquery:
    """Each escalation in ``esc`` (its columns) once per person to tell, with
    ``user_id`` and ``client_side``.

    * ``opened``: its owner when it has one (the sweep hands each escalation to
      the client's own lead, ``with_first_lead``), else everyone in its level's audience;
    * ``raised``: the new level's audience, and the owner;
    * ``assigned``: the owner.

    Only active people; UNION keeps one row when the owner is also in the audience.
    """
    columns = [esc.c[c] for c in ESCALATION_COLUMNS]
    branches = [
        select(*columns, User.id.label("user_id"), literal(False).label("client_side"))
        .join_from(esc, User, User.id == esc.c.owner_id).where(User.active.is_(True))
    ]
    if event != ASSIGNED:
        a = audience()
        branches.append(
            select(*columns, a.c.user_id, a.c.client_side)
            .join_from(esc, a, and_(
                esc.c.level.between(a.c.lo, a.c.hi),
                or_(a.c.client_id.is_(None), a.c.client_id == esc.c.client_id)))
            .where(esc.c.owner_id.is_(None) if event == OPENED else true())
        )
    return (union(*branches) if len(branches) > 1 else branches[0]).subquery("r")


# --- notifying ------------------------------------------------------------------------

# What ``esc`` (the escalations to notify about) must offer.
ESCALATION_COLUMNS = ("id", "task_id", "client_id", "reason", "level", "owner_id", "public_id")


def escalations_by_id(ids: Iterable[int]) -> Subquery:
    """The escalations with these ids, shaped for ``notification_insert``."""
    return select(*(Escalation.__table__.c[c] for c in ESCALATION_COLUMNS)).where(
        Escalation.id.in_(list(ids))).subquery("esc")


def notification_insert(esc: FromClause, event: str) -> Insert:
    """INSERT ... SELECT of the notices about the escalations in ``esc``, RETURNING them.

    The time is the ``now`` parameter (``NOW``), so the sweep can build its
    statements once and run them every minute with new values.

    ``esc`` has the ``ESCALATION_COLUMNS``: a subquery of the table, or in the
    sweep a CTE over the rows an INSERT/UPDATE just returned (PostgreSQL runs
    the whole chain as one statement). The RETURNING rows (``user_id``,
    ``escalation_id``, ``text``, ``link``) are what ``queue_emails`` sends.
    """
    r = _recipients(esc, event)
    text_, link = _wording(r, event, r.c.client_side)
    rows = (
        select(random_public_id(), r.c.user_id, r.c.id, text_, link,
               NOW)
        .select_from(r)
        .join(Task, Task.id == r.c.task_id)
        .join(Client, Client.id == r.c.client_id)
    )
    table = Notification.__table__
    return (
        insert(table)
        .from_select(["public_id", "user_id", "escalation_id", "text", "link", "created_at"], rows)
        .returning(table.c.user_id, table.c.escalation_id, table.c.text, table.c.link)
    )


def notify(escalation_ids: Iterable[int], event: str, *, now: datetime | None = None) -> int:
    """Write notifications (and their e-mails) about these escalations; returns how many.

    ``event`` is ``opened`` or ``raised`` (the escalation's current level picks
    the audience) or ``assigned`` (only the owner hears). One INSERT ... SELECT
    joins the escalations to their recipients, then one outbox INSERT.
    """
    now = now or utcnow()
    ids = list(escalation_ids)
    if not ids:
        return 0
    written = db.session.execute(
        notification_insert(escalations_by_id(ids), event), {"now": now}).all()
    queue_emails(written, now)
    return len(written)


def _wording(esc: FromClause, event: str, client_side) -> tuple:
    """SQL for the notice's text and link; client-side readers see client-facing facts only."""
    ref = func.coalesce(Task.external_ref, func.substr(Task.public_id, 1, 8))
    reason = func.replace(cast(esc.c.reason, String), "_", " ", type_=String)
    level = cast(esc.c.level, String)
    subject = reason + " on " + Client.code + " task " + ref
    provider = {
        OPENED: literal("New escalation (level ") + level + "): " + subject,
        RAISED: literal("Escalation raised to level ") + level
        + ", not acknowledged in time: " + subject,
        ASSIGNED: literal("Escalation assigned to you: ") + subject,
    }[event]
    wording = case(
        *((esc.c.reason == reason_, text) for reason_, text in _CLIENT_WORDING.items()),
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
             else_=literal(escalation_path) + esc.c.public_id),
    )


def queue_emails(written: Iterable, now: datetime) -> None:
    """One e-mail per recipient for ``written`` notices: a digest when there are several.

    The sweep calls it once per run with every notice it wrote, so a lead gets
    one e-mail per sweep however many escalations it opened or raised.
    """
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
