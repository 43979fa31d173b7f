"""Account services shared by the CLI, the admin pages and the client portal."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from functools import cache
from typing import NamedTuple

from flask import current_app, url_for
from sqlalchemy import bindparam, func, select, update

from sla.models import OutboxEmail

from .audit import record
from .database import HotQuery
from .db_types import utcnow
from .extensions import db
from .models import ApiToken, Client, PasswordResetToken, User, UserRole
from .passwords import hash_password, needs_rehash, password_problem, verify_password
from .vocab import CLIENT_ROLES, PROVIDER_ROLES, Role

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_PREFIX = "tl_"  # noqa: S105 - a label, not a secret


class AccountError(ValueError):
    """Bad input for an account operation, phrased for the person who sent it."""


def find_client(code: str) -> Client:
    client = db.session.scalar(select(Client).where(Client.code == code.upper()))
    if client is None:
        raise AccountError(f"No client with code {code!r}.")
    return client


def create_user(
    email: str,
    roles: list[Role | str],
    *,
    password: str,
    client: Client | None = None,
    name: str = "",
    actor: User | None = None,
) -> User:
    """Create a user; client users hold client roles only, staff provider roles only."""
    email = email.strip().lower()
    if "@" not in email:
        raise AccountError("Enter a valid e-mail address.")
    try:
        role_set = {Role(r) for r in roles}
    except ValueError as exc:
        raise AccountError(
            f"Unknown role; choose from: {', '.join(r.value for r in Role)}."
        ) from exc
    if not role_set:
        raise AccountError("Give the user at least one role.")
    if client is None and not role_set <= PROVIDER_ROLES:
        raise AccountError("Client roles need --client CODE.")
    if client is not None and not role_set <= CLIENT_ROLES:
        raise AccountError("A client user can only hold client_admin or client_user.")
    if problem := password_problem(password):
        raise AccountError(problem)
    exists = db.session.scalar(select(func.count()).select_from(User).where(User.email == email))
    if exists:
        raise AccountError(f"A user with e-mail {email} already exists.")
    user = User(
        email=email,
        name=name or email.split("@")[0].replace(".", " ").title(),
        password_hash=hash_password(password),
        client_id=client.id if client else None,
    )
    user.role_rows = [UserRole(role=r) for r in sorted(role_set)]
    db.session.add(user)
    db.session.flush()
    record(
        "user.create",
        object_type="user",
        object_id=user.id,
        client_id=user.client_id,
        actor=actor,
        after={"email": email, "roles": sorted(r.value for r in role_set)},
    )
    return user


def authenticate(email: str, password: str) -> tuple[User | None, str | None]:
    """Check the password step of a sign-in; returns (user, None) or (None, message).

    Audited. Failures count towards the lock-out (see ``register_failure``); the
    count is cleared only when the whole sign-in, MFA included, succeeds.
    """
    from .passwords import dummy_verify

    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        dummy_verify(password)
        record("auth.login_failed", object_type="user", reason="unknown e-mail")
        return None, "Wrong e-mail or password."
    if is_locked(user):
        record("auth.login_locked", object_type="user", object_id=user.id, client_id=user.client_id)
        return None, LOCKED_MESSAGE
    if not user.active or not verify_password(user.password_hash, password):
        register_failure(user, "inactive" if not user.active else "wrong password")
        return None, "Wrong e-mail or password."
    if needs_rehash(user.password_hash):  # older parameters: upgrade while we know it
        user.password_hash = hash_password(password)
    record("auth.password_ok", object_type="user", object_id=user.id,
           client_id=user.client_id, actor=user)
    return user, None


LOCKED_MESSAGE = "This account is locked after repeated failures; try again in 15 minutes."


def is_locked(user: User) -> bool:
    return user.locked_until is not None and user.locked_until > utcnow()


def register_failure(user: User, reason: str) -> bool:
    """Count a failed password or MFA code; the fifth locks the account and e-mails its owner.

    Returns True when this failure locked the account.
    """
    user.failed_logins += 1
    locked = user.failed_logins >= MAX_FAILED_LOGINS
    if locked:
        user.locked_until = utcnow() + LOCKOUT
        user.failed_logins = 0
        _lockout_notice(user, second_factor="MFA" in reason)
        reason += "; account locked"
    record("auth.login_failed", object_type="user", object_id=user.id,
           client_id=user.client_id, reason=reason)
    return locked


def record_login(user: User, *, mfa: bool) -> None:
    """The whole sign-in succeeded: clear the failure count and audit it."""
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = utcnow()
    record("auth.login", object_type="user", object_id=user.id, client_id=user.client_id,
           actor=user, after={"mfa": mfa})


def link(endpoint: str, **values) -> str:
    """An absolute link for an e-mail (a path when there is no request or SERVER_NAME)."""
    try:
        return url_for(endpoint, _external=True, **values)
    except RuntimeError:
        return endpoint


def notify(user: User, subject: str, body: str) -> OutboxEmail:
    """Queue an e-mail to ``user`` in the outbox; it is sent after this transaction commits."""
    mail = OutboxEmail(to_address=user.email, subject=subject, body=body)
    db.session.add(mail)
    return mail


def _lockout_notice(user: User, *, second_factor: bool) -> None:
    cause = (
        "your password was entered correctly but the authentication code was wrong "
        "five times. Someone may know your password: change it as soon as you can."
        if second_factor
        else "the wrong password was entered five times."
    )
    notify(
        user,
        "Your Throughline account was locked",
        f"Hello {user.name},\n\n"
        f"We locked your Throughline account for {int(LOCKOUT.total_seconds() // 60)} minutes "
        f"because {cause}\n\n"
        "If this was you, wait and sign in again. If it was not, reset your password:\n"
        f"{link('auth.forgot_password')}\n\n"
        "This notice was sent automatically; nobody from Throughline will ask for your "
        "password or codes.\n",
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    client: Client, *, name: str = "", actor: User | None = None
) -> tuple[str, ApiToken]:
    """Create an API token; the plain value is returned once and only its hash kept."""
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        client_id=client.id,
        name=name or "API token",
        prefix=plain[:10],
        token_hash=_digest(plain),
        created_by_id=actor.id if actor else None,
    )
    db.session.add(token)
    db.session.flush()
    record(
        "token.create",
        object_type="api_token",
        object_id=token.id,
        client_id=client.id,
        actor=actor,
        after={"prefix": token.prefix, "name": token.name},
    )
    return plain, token


class LiveToken(NamedTuple):
    id: int
    client_id: int
    last_used_at: datetime | None


@cache
def _live_token_by_hash() -> HotQuery:
    # Built once: every API request runs it.
    return HotQuery(select(ApiToken.id, ApiToken.client_id, ApiToken.last_used_at).where(
        ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None)))


def token_client(plain: str) -> LiveToken | None:
    """The live token matching ``plain`` (its last-used time refreshed), or None.

    Plain columns, no ORM object: every API call runs this before anything else.
    """
    row = _live_token_by_hash().first({"token_hash": _digest(plain)})
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        # At most one write a minute per token: concurrent API calls would otherwise
        # queue on this row's lock on every request.
        db.session.execute(update(ApiToken).where(ApiToken.id == row.id)
                           .values(last_used_at=now))
    return LiveToken(*row)


def revoke_token(token: ApiToken, *, actor: User | None = None) -> None:
    token.revoked_at = utcnow()
    record(
        "token.revoke",
        object_type="api_token",
        object_id=token.id,
        client_id=token.client_id,
        actor=actor,
    )


# --- changing and resetting passwords --------------------------------------


class PasswordError(ValueError):
    """A password change or reset that cannot be done, phrased for the person asking."""


RESET_INVALID = "This reset link is invalid, already used or expired; ask for a new one."


def _set_password(user: User, new_password: str) -> None:
    """Store a new password and end every other session of the user (epoch bump)."""
    if problem := password_problem(new_password):
        raise PasswordError(problem)
    if verify_password(user.password_hash, new_password):
        raise PasswordError("Choose a password different from the current one.")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    user.session_epoch += 1


def change_password(user: User, current_password: str, new_password: str) -> None:
    """A signed-in person changes their password; the current one is required."""
    if not verify_password(user.password_hash, current_password):
        record("auth.password_change_failed", object_type="user", object_id=user.id,
               client_id=user.client_id, actor=user, reason="wrong current password")
        raise PasswordError("Your current password is not right.")
    _set_password(user, new_password)
    record("auth.password_changed", object_type="user", object_id=user.id,
           client_id=user.client_id, actor=user)
    notify(user, "Your Throughline password was changed",
           f"Hello {user.name},\n\nThe password of your Throughline account was just changed "
           "and your other sessions were signed out. If you did not do this, reset your "
           "password now and tell your administrator.\n")


def _reset_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def request_password_reset(email: str) -> None:
    """E-mail a single-use reset link if ``email`` has an active account.

    The caller shows the same answer either way, so the page never reveals which
    addresses have accounts.
    """
    user = db.session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None or not user.active:
        record("auth.password_reset_requested", object_type="user", reason="no active account")
        return
    now = utcnow()
    # Only the newest link works: older unused ones are retired.
    db.session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
        .values(used_at=now)
    )
    token = secrets.token_urlsafe(32)
    minutes = current_app.config["PASSWORD_RESET_MINUTES"]
    db.session.add(PasswordResetToken(
        user_id=user.id, token_hash=_reset_digest(token), created_at=now,
        expires_at=now + timedelta(minutes=minutes),
    ))
    record("auth.password_reset_requested", object_type="user", object_id=user.id,
           client_id=user.client_id)
    notify(user, "Reset your Throughline password",
           f"Hello {user.name},\n\nSomeone (hopefully you) asked to reset the password of "
           f"your Throughline account. This link works once, for {minutes} minutes:\n\n"
           f"{link('auth.reset_password_page', token=token)}\n\n"
           "If you did not ask for it, ignore this e-mail: your password stays as it is.\n")


def reset_token_user(token: str) -> User | None:
    """The user a live reset token belongs to, or None (unknown, used or expired)."""
    return db.session.scalar(
        select(User)
        .join(PasswordResetToken, PasswordResetToken.user_id == User.id)
        .where(
            PasswordResetToken.token_hash == _reset_digest(token),
            PasswordResetToken.used_at.is_(None),
            PasswordResetToken.expires_at > utcnow(),
            User.active.is_(True),
        )
    )


def reset_password(token: str, new_password: str) -> User:
    """Set a new password from a reset link; the link is used up (atomically) on success.

    The lock-out is lifted (the person proved they read the account's mailbox) but
    MFA is not touched: the next sign-in still asks for the code.
    """
    user = reset_token_user(token)
    if user is None:
        record("auth.password_reset_failed", object_type="user", reason="invalid token")
        raise PasswordError(RESET_INVALID)
    _set_password(user, new_password)
    claimed = db.session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.token_hash == _reset_digest(token),
               PasswordResetToken.used_at.is_(None))
        .values(used_at=utcnow())
    ).rowcount
    if claimed != 1:  # a concurrent request used it first
        raise PasswordError(RESET_INVALID)
    user.failed_logins = 0
    user.locked_until = None
    record("auth.password_reset", object_type="user", object_id=user.id,
           client_id=user.client_id, actor=user)
    notify(user, "Your Throughline password was reset",
           f"Hello {user.name},\n\nThe password of your Throughline account was reset with "
           "an e-mailed link and your sessions were signed out. If this was not you, tell "
           "your administrator now.\n")
    return user
