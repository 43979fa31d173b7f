"""Webhook endpoints: registering, editing, disabling, and their signing secrets.

A secret signs every delivery (HMAC-SHA256), so we must be able to read it back: unlike an
API token it cannot be stored as a hash. It is stored encrypted with Fernet under
``WEBHOOK_ENCRYPTION_KEY`` (or a key derived from ``SECRET_KEY``), shown to the client once
when created or rotated, and only its first characters are displayed afterwards. The
trade-off: a database dump alone does not reveal secrets, but the database plus the
application key does; rotate secrets if the key leaks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import select

from sla.models import Notification

from ..accounts import notify
from ..audit import record
from ..db_types import utcnow
from ..extensions import db
from ..models import Client, User, UserRole
from ..vocab import Role
from . import ssrf
from .models import WebhookEndpoint

EVENTS: dict[str, str] = {
    "task.created": "A task was received (portal, API, CSV or e-mail).",
    "task.info_requested": "We asked you for information; the task waits for your answer.",
    "task.completed": "A task was completed; completed-work documents come with signed links.",
    "task.qa_failed": "Quality review sent a task back for rework.",
    "escalation.opened": "A task was escalated (SLA at risk or breached, QA, complaint).",
    "report.ready": "An SLA report is ready to download.",
}
TEST_EVENT = "webhook.test"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a marker, not a secret
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept between our timestamp and now


class WebhookError(ValueError):
    """An endpoint change that cannot be made, with messages keyed by form field."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(" ".join(v) for v in errors.values()))
        self.errors = errors


# --- secrets --------------------------------------------------------------------------------


def _fernet() -> Fernet:
    key = current_app.config.get("WEBHOOK_ENCRYPTION_KEY")
    if key:
        return Fernet(key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"throughline webhook secrets").derive(
        current_app.config["SECRET_KEY"].encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_of(endpoint: WebhookEndpoint) -> str:
    try:
        return _fernet().decrypt(endpoint.secret_encrypted.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("webhook secret cannot be decrypted: the encryption key "
                           "changed; rotate the endpoint's secret") from exc


def _set_secret(endpoint: WebhookEndpoint, plain: str) -> None:
    endpoint.secret_encrypted = _fernet().encrypt(plain.encode()).decode()
    endpoint.secret_prefix = plain[: len(SECRET_PREFIX) + 4]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` (the X-Throughline-Signature)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float,
           tolerance: int = SIGNATURE_TOLERANCE) -> bool:
    """What a receiver does (docs/INTEGRATIONS.md): constant-time compare, fresh timestamp."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature or "")


# --- endpoints ------------------------------------------------------------------------------


def _clean(url: str, events: Iterable[str], description: str) -> tuple[str, list[str], str]:
    errors: dict[str, list[str]] = {}
    url = (url or "").strip()
    try:
        ssrf.check_url(url, allow_loopback=current_app.config["WEBHOOK_ALLOW_LOOPBACK"])
    except ssrf.UnsafeTarget as exc:
        errors["url"] = [str(exc)]
    chosen = [e for e in EVENTS if e in set(events or ())]
    unknown = sorted(set(events or ()) - set(EVENTS))
    if unknown:
        errors["events"] = [f"Unknown event(s): {', '.join(unknown)}."]
    elif not chosen:
        errors["events"] = ["Choose at least one event."]
    description = (description or "").strip()
    if len(description) > 200:
        errors["description"] = ["Keep the description under 200 characters."]
    if errors:
        raise WebhookError(errors)
    return url, chosen, description


def create_endpoint(client: Client, url: str, events: Iterable[str], description: str = "",
                    *, actor: User | None) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret (shown once, never again)."""
    url, chosen, description = _clean(url, events, description)
    plain = new_secret()
    endpoint = WebhookEndpoint(client_id=client.id, url=url, events=chosen,
                               description=description,
                               created_by_id=actor.id if actor else None)
    _set_secret(endpoint, plain)
    db.session.add(endpoint)
    db.session.flush()
    record("webhook.endpoint_created", object_type="webhook_endpoint", object_id=endpoint.id,
           client_id=client.id, actor=actor, after={"url": url, "events": chosen})
    return endpoint, plain


def update_endpoint(endpoint: WebhookEndpoint, url: str, events: Iterable[str],
                    description: str = "", *, actor: User | None) -> None:
    url, chosen, description = _clean(url, events, description)
    before = {"url": endpoint.url, "events": list(endpoint.events)}
    endpoint.url, endpoint.events, endpoint.description = url, chosen, description
    db.session.flush()
    record("webhook.endpoint_updated", object_type="webhook_endpoint", object_id=endpoint.id,
           client_id=endpoint.client_id, actor=actor, before=before,
           after={"url": url, "events": chosen})


def rotate_secret(endpoint: WebhookEndpoint, *, actor: User | None) -> str:
    plain = new_secret()
    _set_secret(endpoint, plain)
    db.session.flush()
    record("webhook.secret_rotated", object_type="webhook_endpoint", object_id=endpoint.id,
           client_id=endpoint.client_id, actor=actor)
    return plain


def set_enabled(endpoint: WebhookEndpoint, enabled: bool, *, actor: User | None,
                reason: str | None = None) -> None:
    """Turn deliveries on or off; turning on starts the failure count afresh."""
    if endpoint.enabled == enabled:
        return
    endpoint.enabled = enabled
    if enabled:
        endpoint.disabled_at = endpoint.disabled_reason = None
        endpoint.consecutive_failures = 0
    else:
        endpoint.disabled_at = utcnow()
        endpoint.disabled_reason = (reason or "disabled by the client")[:300]
    db.session.flush()
    record("webhook.endpoint_enabled" if enabled else "webhook.endpoint_disabled",
           object_type="webhook_endpoint", object_id=endpoint.id,
           client_id=endpoint.client_id, actor=actor, reason=endpoint.disabled_reason)


def auto_disable(endpoint: WebhookEndpoint, failures: int) -> None:
    """Stop delivering to an endpoint that keeps failing, and tell the client's admins."""
    from .delivery import cancel_pending

    reason = f"disabled automatically after {failures} failed attempts in a row"
    set_enabled(endpoint, False, actor=None, reason=reason)
    cancel_pending(endpoint)
    link = current_app.url_map.bind("").build("webhooks.endpoint",
                                              {"public_id": endpoint.public_id})
    text = (f"Webhook endpoint {endpoint.url} was {reason}. Fix the receiver, then enable it "
            "again and redeliver what it missed.")
    admins = db.session.scalars(select(User).where(
        User.client_id == endpoint.client_id, User.active.is_(True),
        User.id.in_(select(UserRole.user_id).where(UserRole.role == Role.CLIENT_ADMIN))))
    for admin in admins:
        db.session.add(Notification(user_id=admin.id, text=text, link=link))
        notify(admin, "A Throughline webhook endpoint was disabled",
               f"{text}\n\n{current_app.config['PUBLIC_BASE_URL']}{link}\n")
    db.session.flush()
