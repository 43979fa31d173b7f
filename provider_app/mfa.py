"""TOTP multi-factor sign-in (RFC 6238 via pyotp), required for provider staff.

Provider staff see every client's nonpublic personal information, so a stolen
password alone must not be enough. The secret is stored encrypted (Fernet; the
key is MFA_ENCRYPTION_KEY or derived from SECRET_KEY) and shown only while
enrolling. A code is accepted at most once (the matched time step is recorded
with an atomic UPDATE), and one neighbouring 30-second step either side is
allowed for clock drift. Ten single-use recovery codes, stored hashed, cover a
lost phone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import delete, or_, update

from .accounts import notify
from .audit import record
from .db_types import utcnow
from .extensions import db
from .models import MfaRecoveryCode, User
from .vocab import PROVIDER_ROLES

VALID_WINDOW = 1  # accept the previous and next 30 s step as well
RECOVERY_CODE_COUNT = 10


class MfaError(ValueError):
    """A code or secret that cannot be accepted, phrased for the person entering it."""


def is_enabled(user: User) -> bool:
    return user.mfa_enabled_at is not None and user.mfa_secret is not None


def is_required(user: User) -> bool:
    """Provider staff must use MFA (unless MFA_REQUIRED_FOR_PROVIDER is off)."""
    return bool(current_app.config["MFA_REQUIRED_FOR_PROVIDER"]) and user.has_role(
        *PROVIDER_ROLES
    )


# --- the secret at rest ------------------------------------------------------


def _fernet() -> Fernet:
    key = current_app.config.get("MFA_ENCRYPTION_KEY")
    if key:
        return Fernet(key)
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"throughline totp secrets"
    ).derive(current_app.config["SECRET_KEY"].encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise MfaError(
            "Your authenticator cannot be checked (the server's MFA key changed); "
            "ask an administrator to reset your multi-factor sign-in."
        ) from exc


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads (as a QR code or typed in)."""
    return pyotp.TOTP(secret).provisioning_uri(
        name=user.email, issuer_name=current_app.config["MFA_ISSUER"]
    )


def qr_data_uri(uri: str) -> str:
    """The URI as an SVG QR code in a data: URI (allowed by the CSP's img-src)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


# --- checking codes ----------------------------------------------------------


def _normalise(code: str) -> str:
    return "".join(ch for ch in (code or "") if ch.isalnum()).lower()


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step whose code equals ``code`` (within VALID_WINDOW), or None."""
    code = _normalise(code)
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(at if at is not None else time.time())
    for step in range(now_step - VALID_WINDOW, now_step + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _claim_step(user: User, step: int) -> bool:
    """Record ``step`` as used unless it (or a later one) already was: atomic, so a
    code replayed by a concurrent request is refused too."""
    claimed = db.session.execute(
        update(User)
        .where(User.id == user.id)
        .where(or_(User.mfa_last_step.is_(None), User.mfa_last_step < step))
        .values(mfa_last_step=step)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(user, ["mfa_last_step"])
    return claimed == 1


def _hash_recovery(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def _use_recovery_code(user: User, code: str) -> bool:
    used = db.session.execute(
        update(MfaRecoveryCode)
        .where(
            MfaRecoveryCode.user_id == user.id,
            MfaRecoveryCode.code_hash == _hash_recovery(code),
            MfaRecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    return used == 1


def verify(user: User, code: str) -> str | None:
    """Check a sign-in code: returns "totp" or "recovery" when accepted, else None.

    Audited either way (never with the code itself).
    """
    accepted: str | None = None
    step = matching_step(decrypt_secret(user.mfa_secret or ""), code)
    if step is not None:
        if _claim_step(user, step):
            accepted = "totp"
        else:
            record("auth.mfa_failed", object_type="user", object_id=user.id,
                   client_id=user.client_id, actor=user, reason="code already used")
            return None
    elif len(_normalise(code)) == 10 and _use_recovery_code(user, code):
        accepted = "recovery"
    if accepted is None:
        record("auth.mfa_failed", object_type="user", object_id=user.id,
               client_id=user.client_id, actor=user, reason="wrong code")
        return None
    record("auth.mfa_ok", object_type="user", object_id=user.id, client_id=user.client_id,
           actor=user, after={"method": accepted})
    return accepted


# --- enrolment ----------------------------------------------------------------


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes; the plain codes are returned once."""
    db.session.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id))
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODE_COUNT)]
    db.session.add_all(
        MfaRecoveryCode(user_id=user.id, code_hash=_hash_recovery(c)) for c in codes
    )
    db.session.flush()
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def enable(user: User, secret: str, code: str) -> list[str]:
    """Turn MFA on once the person proves their app shows the right code."""
    step = matching_step(secret, code)
    if step is None:
        record("auth.mfa_failed", object_type="user", object_id=user.id,
               client_id=user.client_id, actor=user, reason="wrong code while enrolling")
        raise MfaError("That code does not match; check the time on your phone and try again.")
    user.mfa_secret = encrypt_secret(secret)
    user.mfa_enabled_at = utcnow()
    user.mfa_last_step = step
    codes = new_recovery_codes(user)
    record("auth.mfa_enrolled", object_type="user", object_id=user.id,
           client_id=user.client_id, actor=user)
    notify(user, "Multi-factor sign-in is on for your Throughline account",
           f"Hello {user.name},\n\nAn authenticator app was just set up for your Throughline "
           "account. If this was not you, tell your administrator immediately.\n")
    return codes


def disable(user: User, *, actor: User | None = None, reason: str | None = None) -> None:
    """Turn MFA off (a client user's choice, or an administrator's reset for a lost phone)."""
    user.mfa_secret = None
    user.mfa_enabled_at = None
    user.mfa_last_step = None
    db.session.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user.id))
    record("auth.mfa_disabled", object_type="user", object_id=user.id,
           client_id=user.client_id, actor=actor, reason=reason)
    notify(user, "Multi-factor sign-in was turned off for your Throughline account",
           f"Hello {user.name},\n\nMulti-factor sign-in was turned off for your Throughline "
           "account. If you did not expect this, tell your administrator.\n")
    db.session.flush()


def current_code(user: User) -> str:
    """The code the user's authenticator shows now (the development-only CLI prints it)."""
    if not is_enabled(user):
        raise MfaError(f"{user.email} has no multi-factor sign-in set up.")
    return pyotp.TOTP(decrypt_secret(user.mfa_secret or "")).now()
