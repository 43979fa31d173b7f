"""Helpers for the trust tests: signing in through the real two-step flow."""

from __future__ import annotations

import time

import pyotp
import pytest

from provider_app import mfa
from provider_app.db_types import utcnow
from tests.conftest import CSRF_RAW
from tests.factories import PASSWORD


@pytest.fixture
def sign_in(client):
    """POST the password step; returns the response."""

    def _sign_in(email: str, password: str = PASSWORD, **kw):
        return client.post("/login", data={"email": email, "password": password}, **kw)

    return _sign_in


@pytest.fixture
def get_form(client):
    """GET a page with a form, keeping the CSRF value the test client signs its POSTs with
    (rendering a form stores a fresh random token in the session)."""

    def _get(path: str):
        response = client.get(path)
        with client.session_transaction() as session:
            session["csrf_token"] = CSRF_RAW
        return response

    return _get


@pytest.fixture
def with_mfa(db):
    """Turn MFA on for a user with a fresh secret (as if enrolled); returns the secret.

    Committed (to the test's savepoint) so a request answering 4xx, which rolls its
    own work back, does not take the user with it.
    """

    def _with_mfa(user) -> str:
        secret = pyotp.random_base32()
        user.mfa_secret = mfa.encrypt_secret(secret)
        user.mfa_enabled_at = utcnow()
        user.mfa_last_step = None
        db.session.commit()
        return secret

    return _with_mfa


def code_now(secret: str) -> str:
    return pyotp.TOTP(secret).now()


def next_code(secret: str) -> str:
    """The code of the next 30 s step: accepted (clock drift window) and not yet used."""
    return pyotp.TOTP(secret).at(time.time() + 30)


@pytest.fixture
def codes():
    return type("Codes", (), {"now": staticmethod(code_now), "next": staticmethod(next_code)})


@pytest.fixture
def add_document(db):
    """Attach a stored file to a task (row + file under UPLOAD_DIR), as intake would."""
    import hashlib
    import uuid

    from provider_app.intake.documents import storage_path
    from provider_app.models import Document

    def _add(task, content: bytes, filename: str = "scan.pdf") -> Document:
        storage_name = uuid.uuid4().hex
        path = storage_path(storage_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        document = Document(
            client_id=task.client_id, task_id=task.id, filename=filename,
            content_type="application/pdf", size=len(content),
            sha256=hashlib.sha256(content).hexdigest(), storage_name=storage_name,
        )
        db.session.add(document)
        db.session.flush()
        return document

    return _add
