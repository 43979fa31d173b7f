"""Authentication for the JSON API: a client's bearer token or a client user's session."""

from __future__ import annotations

import hashlib

from flask import g, jsonify, request
from flask_login import current_user
from flask_wtf.csrf import validate_csrf
from wtforms.validators import ValidationError

from provider_app.accounts import token_client
from provider_app.audit import record
from provider_app.extensions import db
from provider_app.vocab import Role

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _error(status: int, message: str):
    response = jsonify(error=message)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="throughline"'
    return response


def rate_limit_key() -> str:
    """Rate-limit bucket: the presented credential (hashed), else the caller's address."""
    header = request.headers.get("Authorization", "")
    if header:
        return "token:" + hashlib.sha256(header.encode()).hexdigest()[:32]
    return "ip:" + (request.remote_addr or "unknown")


def authenticate_api(roles: frozenset[Role]):
    """Set ``g.api_client_id`` for the caller or answer 401/403 as JSON."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _error(401, "use 'Authorization: Bearer <token>'")
        token = token_client(value.strip())
        if token is None:
            record("auth.token_rejected", object_type="api_token", reason=request.path)
            db.session.commit()
            return _error(401, "invalid or revoked API token")
        g.api_client_id = token.client_id
        g.api_token_id = token.id
        return None
    if not current_user.is_authenticated:
        return _error(401, "authentication required")
    if current_user.client_id is None or not current_user.has_role(*roles):
        record("access.denied", object_type="route", reason=f"API {request.path}")
        db.session.commit()
        return _error(403, "the API is for client users and client tokens")
    if request.method not in SAFE_METHODS:
        # The blueprint is CSRF-exempt for token callers; a browser session must prove
        # the request comes from our own pages.
        try:
            validate_csrf(request.headers.get("X-CSRFToken"))
        except ValidationError:
            return _error(400, "missing or invalid CSRF token (send X-CSRFToken)")
    g.api_client_id = current_user.client_id
    return None
