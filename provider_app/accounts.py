"""Account services shared by the CLI, the admin pages and the client portal."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import func, select

from .audit import record
from .db_types import utcnow
from .extensions import db
from .models import ApiToken, Client, User, UserRole
from .passwords import hash_password, password_problem, verify_password
from .vocab import CLIENT_ROLES, PROVIDER_ROLES, Role

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
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
    """Check a sign-in; returns (user, None) or (None, message). Audited; locks after 5."""
    from .passwords import dummy_verify

    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    now = utcnow()
    if user is None:
        dummy_verify(password)
        record("auth.login_failed", object_type="user", reason="unknown e-mail")
        return None, "Wrong e-mail or password."
    if user.locked_until and user.locked_until > now:
        record("auth.login_locked", object_type="user", object_id=user.id, client_id=user.client_id)
        return None, "This account is locked after repeated failures; try again in 15 minutes."
    if not user.active or not verify_password(user.password_hash, password):
        user.failed_logins += 1
        reason = "inactive" if not user.active else "wrong password"
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            reason += "; account locked"
        record(
            "auth.login_failed",
            object_type="user",
            object_id=user.id,
            client_id=user.client_id,
            reason=reason,
        )
        return None, "Wrong e-mail or password."
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    record(
        "auth.login", object_type="user", object_id=user.id, client_id=user.client_id, actor=user
    )
    return user, None


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


def token_client(plain: str) -> ApiToken | None:
    """The live token matching ``plain`` (its last-used time refreshed), or None."""
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _digest(plain), ApiToken.revoked_at.is_(None))
    )
    if token is not None:
        token.last_used_at = utcnow()
    return token


def revoke_token(token: ApiToken, *, actor: User | None = None) -> None:
    token.revoked_at = utcnow()
    record(
        "token.revoke",
        object_type="api_token",
        object_id=token.id,
        client_id=token.client_id,
        actor=actor,
    )
