"""Authentication for the JSON API: a client's bearer token or a client user's session,
after the per-credential rate limit."""

from __future__ import annotations

import hashlib
import time
from functools import cache

from flask import current_app, g, jsonify, request
from flask_login import current_user
from flask_wtf.csrf import validate_csrf
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import STRATEGIES, RateLimiter
from redis.exceptions import RedisError
from wtforms.validators import ValidationError

from provider_app.accounts import token_client
from provider_app.audit import record
from provider_app.extensions import db, limiter
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


class CredentialLimit:
    """``TOKEN_RATE_LIMIT`` per credential on every API route, counted in flask-limiter's
    storage (so ``limiter.enabled`` and ``limiter.reset()`` govern it too) and in this
    process's memory while that storage is unreachable.

    One ``limits`` hit instead of flask-limiter's per-request machinery (resolving
    decorated, blueprint and default limits and exemptions), which cost the API more CPU
    than the token check itself (docs/PERFORMANCE.md, intake).
    """

    RETRY_STORAGE_SECONDS = 30.0

    def __init__(self) -> None:
        self._shared: RateLimiter | None = None
        self._memory: RateLimiter | None = None
        self._storage_down_until = 0.0

    def _strategy(self) -> RateLimiter:
        name = current_app.config.get("RATELIMIT_STRATEGY", "fixed-window")
        if time.monotonic() < self._storage_down_until:
            if self._memory is None:
                self._memory = STRATEGIES[name](MemoryStorage())
            return self._memory
        if self._shared is None or self._shared.storage is not limiter.storage:
            # Built again when the limiter is bound to another storage (tests' apps).
            self._shared = STRATEGIES[name](limiter.storage)
        return self._shared

    def refusal(self):
        """None if the caller may go on, else the 429 answer (with ``Retry-After``)."""
        if not (limiter.enabled and limiter.initialized):
            return None
        item = _parsed(current_app.config["TOKEN_RATE_LIMIT"])
        key = rate_limit_key()
        strategy = self._strategy()
        try:
            if strategy.hit(item, key, "api"):
                return None
            reset_at = strategy.get_window_stats(item, key, "api").reset_time
        except (StorageError, RedisError):  # storage unreachable: count in memory a while
            current_app.logger.warning("rate limit storage unreachable; counting in memory")
            self._storage_down_until = time.monotonic() + self.RETRY_STORAGE_SECONDS
            return self.refusal()
        response = _error(429, str(item))
        response.headers["Retry-After"] = str(max(1, int(reset_at - time.time())))
        return response


@cache
def _parsed(text: str) -> RateLimitItem:
    return parse(text)


credential_limit = CredentialLimit()


def authenticate_api(roles: frozenset[Role]):
    """Set ``g.api_client_id`` for the caller or answer 401/403/429 as JSON."""
    if (refused := credential_limit.refusal()) is not None:
        return refused
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
