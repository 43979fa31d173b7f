"""Server-side sessions in Redis, and the rules for starting, checking and ending them.

The browser holds only a random session id; the data lives in Redis under
``SESSION_KEY_PREFIX``, so signing out (or a password change) really ends the
session: the server-side record is deleted and a stolen cookie is worth nothing.
A fresh id is issued whenever the privilege level changes (password accepted,
MFA passed, signed out), so an id planted before sign-in never becomes a
signed-in one.
"""

from __future__ import annotations

import time
from datetime import timedelta

from flask import Flask, current_app, flash, jsonify, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_session.redis import RedisSessionInterface
from redis import Redis
from redis.exceptions import RedisError

from .audit import record
from .extensions import db
from .mfa import is_required
from .models import User


class RedisSessionStore(RedisSessionInterface):
    """Flask-Session's Redis store, with a server-side lifetime equal to the idle limit.

    A session nobody uses for SESSION_IDLE_MINUTES disappears from Redis on its
    own, so abandoned sessions do not pile up. When Redis cannot be reached a
    request simply has no session (the person is asked to sign in) instead of
    failing with a server error.
    """

    def _retrieve_session_data(self, store_id: str) -> dict | None:
        try:
            return super()._retrieve_session_data(store_id)
        except RedisError:
            current_app.logger.warning("session store unreachable; treating as signed out")
            return None

    def _upsert_session(self, session_lifetime: timedelta, session, store_id: str) -> None:
        idle = timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"])
        try:
            super()._upsert_session(min(idle, session_lifetime), session, store_id)
        except RedisError:
            current_app.logger.error("session store unreachable; session not saved")

    def _delete_session(self, store_id: str) -> None:
        try:
            super()._delete_session(store_id)
        except RedisError:  # it expires by itself after the idle limit
            current_app.logger.error("session store unreachable; session not deleted")


def store_key(sid: str) -> str:
    """The Redis key holding the session with id ``sid`` (tests and operators use it)."""
    return current_app.config["SESSION_KEY_PREFIX"] + sid


def rotate() -> None:
    """Give the current session a new id and delete the old server-side record."""
    current_app.session_interface.regenerate(session)


def begin(user: User, *, mfa: bool) -> None:
    """Sign ``user`` in under a fresh session id; ``mfa`` says a second factor was checked."""
    session.clear()
    login_user(user)
    now = time.time()
    session["epoch"] = user.session_epoch
    session["login_at"] = now
    session["last_seen"] = now
    session["mfa"] = mfa
    session.permanent = True
    rotate()


def end(message: str | None = None) -> None:
    """Sign out and delete the server-side session; ``message`` is shown on the next page."""
    logout_user()
    session.clear()
    if message:
        flash(message, "info")
        rotate()  # the flash lives in a new session; the old record is deleted now
    # An empty session is deleted from Redis (and its cookie) when the response is saved.


def enforce_limits():
    """before_request: end sessions past the idle or absolute limit, or missing MFA.

    API calls with a bearer token carry no session; a client user's session used on
    the API obeys the same limits (and gets a JSON 401 when it has ended).
    """
    if "Authorization" in request.headers or not current_user.is_authenticated:
        return None
    config = current_app.config
    now = time.time()
    idle = now - session.get("last_seen", 0) > config["SESSION_IDLE_MINUTES"] * 60
    lifetime = config["PERMANENT_SESSION_LIFETIME"].total_seconds()
    absolute = now - session.get("login_at", 0) > lifetime
    if idle or absolute or (is_required(current_user) and not session.get("mfa")):
        reason = "idle" if idle else "absolute limit" if absolute else "MFA missing"
        record("auth.session_expired", object_type="user", object_id=current_user.id,
               client_id=current_user.client_id, reason=reason)
        end("Your session timed out; please sign in again.")
        if request.path.startswith("/api/"):
            db.session.commit()  # keep the audit event: the 401 rolls the request back
            return jsonify(error="your session has ended; sign in again"), 401
        return redirect(url_for("auth.login", next=request.full_path))
    session["last_seen"] = now
    return None


def init_app(app: Flask) -> None:
    app.session_interface = RedisSessionStore(
        app,
        client=Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5),
        key_prefix=app.config["SESSION_KEY_PREFIX"],
        use_signer=False,
        permanent=True,
        sid_length=32,
        serialization_format="msgpack",
    )
    app.before_request(enforce_limits)
