"""Server-side sessions in Redis, and the rules for starting, checking and ending them.

The browser holds only a random session id; the data lives in Redis under
``SESSION_KEY_PREFIX``, so signing out (or a password change) really ends the
session: the server-side record is deleted and a stolen cookie is worth nothing.
A fresh id is issued whenever the privilege level changes (password accepted,
MFA passed, signed out), so an id planted before sign-in never becomes a
signed-in one.
"""

from __future__ import annotations

import base64
import time
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import (
    Flask,
    Request,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask.json.tag import TaggedJSONSerializer
from flask_login import current_user, login_user, logout_user
from flask_session.base import ServerSideSession
from flask_session.redis import RedisSessionInterface
from redis import Redis
from redis.exceptions import RedisError

from .audit import record
from .extensions import db
from .mfa import is_required
from .models import User

# A cookie value starting with this holds the session itself (encrypted), written only
# while Redis is unreachable; a Redis session id never contains a dot.
FALLBACK_PREFIX = "c."
_TAGGED_JSON = TaggedJSONSerializer()


def _fallback_cipher() -> Fernet:
    """Fernet (encrypted and authenticated, with a timestamp) keyed from SECRET_KEY."""
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"throughline session fallback"
    ).derive(current_app.config["SECRET_KEY"].encode())
    return Fernet(base64.urlsafe_b64encode(key))


class RedisSessionStore(RedisSessionInterface):
    """Flask-Session's Redis store, with a server-side lifetime equal to the idle limit.

    A session nobody uses for SESSION_IDLE_MINUTES disappears from Redis on its
    own, so abandoned sessions do not pile up.

    When Redis cannot be reached, nothing fails with a server error: a session
    stored in Redis cannot be read (its owner is asked to sign in again), and a
    session written meanwhile is kept in the cookie itself, encrypted, valid for
    the idle limit from its last use, so people can sign in and send work during
    an outage. The first request after Redis is back moves it into Redis under a
    fresh id. Such a cookie cannot be revoked on the server: signing out deletes
    it from the browser, but a copy taken before stays usable until its idle
    limit (the absolute limit and a password change still end it).
    """

    def open_session(self, app: Flask, request: Request) -> ServerSideSession | None:
        raw = request.cookies.get(self.get_cookie_name(app), "")
        if not raw and "Authorization" in request.headers:
            # A bearer-token call has no session: None makes Flask use a null session
            # (reads see it empty, writes raise) and save nothing at the end.
            return None
        if not raw.startswith(FALLBACK_PREFIX):
            return super().open_session(app, request)
        idle = app.config["SESSION_IDLE_MINUTES"] * 60
        try:
            data = _TAGGED_JSON.loads(
                _fallback_cipher().decrypt(raw[len(FALLBACK_PREFIX):].encode(), ttl=idle)
            )
        except (InvalidToken, ValueError):
            data = {}
        fresh = self.session_class(data, sid=self._generate_sid(self.sid_length),
                                   permanent=self.permanent)
        fresh.modified = bool(data)  # saved again: into Redis if it is back, else the cookie
        return fresh

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        super().save_session(app, session, response)
        if g.pop("session_store_down", False) and session:
            self._set_fallback_cookie(app, session, response)

    def _set_fallback_cookie(
        self, app: Flask, session: ServerSideSession, response: Response
    ) -> None:
        name = self.get_cookie_name(app)
        others = [c for c in response.headers.getlist("Set-Cookie")
                  if not c.startswith(f"{name}=")]
        response.headers.remove("Set-Cookie")
        for cookie in others:
            response.headers.add("Set-Cookie", cookie)
        token = _fallback_cipher().encrypt(_TAGGED_JSON.dumps(dict(session)).encode())
        response.set_cookie(
            name, FALLBACK_PREFIX + token.decode(), expires=self.get_expiration_time(app, session),
            httponly=self.get_cookie_httponly(app), domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app), secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")

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
            current_app.logger.error("session store unreachable; session kept in the cookie")
            g.session_store_down = True

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
