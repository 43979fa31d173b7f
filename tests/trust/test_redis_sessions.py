"""Server-side sessions in Redis: fresh ids, real sign-out, idle and absolute limits."""

import time

from sqlalchemy import select

from provider_app.models import AuditEvent
from provider_app.sessions import store_key
from provider_app.vocab import Role
from tests.conftest import CSRF_RAW
from tests.factories import gen_client, gen_token, gen_user


def _sid(client) -> str | None:
    cookie = client.get_cookie("tl_session")
    return cookie.value if cookie else None


def _visit_login_page(client) -> None:
    """GET /login (an anonymous session with a CSRF token), keeping the test's CSRF value."""
    client.get("/login")
    with client.session_transaction() as session:
        session["csrf_token"] = CSRF_RAW


def test_the_session_lives_in_redis_and_sign_out_deletes_it(app, client, redis_conn, sign_in):
    user = gen_user(Role.CLIENT_USER, gen_client())
    assert sign_in(user.email).status_code == 302
    sid = _sid(client)
    with app.app_context():
        key = store_key(sid)
    assert redis_conn.exists(key)
    assert str(user.id).encode() in redis_conn.get(key)  # the data is server-side
    assert len(sid) >= 40  # the cookie holds only a random id

    assert client.post("/logout").status_code == 302
    assert not redis_conn.exists(key)
    # Replaying the old cookie gets nothing.
    client.set_cookie("tl_session", sid, domain="localhost")
    assert client.get("/portal/").status_code == 302


def test_sign_in_issues_a_new_session_id(app, client, redis_conn, sign_in):
    user = gen_user(Role.CLIENT_USER, gen_client())
    _visit_login_page(client)  # an anonymous session exists before sign-in
    before = _sid(client)
    assert before and redis_conn.exists(app.config["SESSION_KEY_PREFIX"] + before)
    sign_in(user.email)
    after = _sid(client)
    assert after != before
    assert not redis_conn.exists(app.config["SESSION_KEY_PREFIX"] + before)


def test_a_planted_session_id_never_becomes_signed_in(app, client, redis_conn, sign_in):
    user = gen_user(Role.CLIENT_USER, gen_client())
    _visit_login_page(client)
    planted = _sid(client)
    sign_in(user.email)
    attacker = app.test_client()
    attacker.set_cookie("tl_session", planted, domain="localhost")
    assert attacker.get("/portal/").status_code == 302


def test_redis_keys_expire_after_the_idle_limit(app, client, redis_conn, sign_in):
    user = gen_user(Role.CLIENT_USER, gen_client())
    sign_in(user.email)
    ttl = redis_conn.ttl(app.config["SESSION_KEY_PREFIX"] + _sid(client))
    assert 0 < ttl <= app.config["SESSION_IDLE_MINUTES"] * 60


def test_idle_session_ends_and_is_audited(client, db, redis_conn):
    user = gen_user(Role.CLIENT_USER, gen_client())
    client.login(user)
    with client.session_transaction() as session:
        session["last_seen"] = time.time() - 31 * 60
    response = client.get("/portal/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/portal/").status_code == 302  # really signed out
    reasons = db.session.scalars(
        select(AuditEvent.reason).where(AuditEvent.action == "auth.session_expired",
                                        AuditEvent.object_id == user.id)
    ).all()
    assert reasons == ["idle"]


def test_absolute_limit_of_twelve_hours(client, db, redis_conn):
    user = gen_user(Role.CLIENT_USER, gen_client())
    client.login(user)
    assert client.get("/portal/").status_code == 200
    with client.session_transaction() as session:
        session["login_at"] = time.time() - 12 * 3600 - 60  # active all along, but too long
    response = client.get("/portal/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert db.session.scalar(
        select(AuditEvent.reason).where(AuditEvent.action == "auth.session_expired",
                                        AuditEvent.object_id == user.id)
    ) == "absolute limit"


def test_provider_session_without_second_factor_is_ended(client, redis_conn):
    client.login(gen_user(Role.TEAM_LEAD))
    with client.session_transaction() as session:
        session["mfa"] = False
    assert client.get("/board").status_code == 302


def test_cookie_flags(app, client, redis_conn, sign_in, monkeypatch):
    user = gen_user(Role.CLIENT_USER, gen_client())
    cookie = sign_in(user.email).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)
    other = app.test_client()
    response = other.post("/login", data={"email": user.email, "password": "x" * 12})
    assert "Secure" in response.headers["Set-Cookie"]
    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]


def test_sign_out_and_password_change_end_other_sessions(app, client, redis_conn):
    user = gen_user(Role.CLIENT_USER, gen_client())
    other = app.test_client().login(user)
    client.login(user)
    assert other.get("/portal/").status_code == 200
    response = client.post("/account/password", data={
        "current_password": "correct horse battery", "new_password": "a brand new secret",
        "confirm": "a brand new secret",
    })
    assert response.status_code == 302
    assert client.get("/portal/").status_code == 200  # this session stays
    assert other.get("/portal/").status_code == 302  # the other one ended


def test_a_session_used_on_the_api_obeys_the_idle_limit(client, db, redis_conn):
    user = gen_user(Role.CLIENT_USER, gen_client())
    db.session.commit()
    client.login(user)
    assert client.get("/api/v1/tasks").status_code == 200
    with client.session_transaction() as session:
        session["last_seen"] = time.time() - 31 * 60
    response = client.get("/api/v1/tasks")
    assert response.status_code == 401
    assert response.json == {"error": "your session has ended; sign in again"}
    assert db.session.scalar(select(AuditEvent.reason).where(
        AuditEvent.action == "auth.session_expired", AuditEvent.object_id == user.id)) == "idle"


def test_a_bearer_token_call_has_no_session(client, redis_conn):
    """A token call opens no server-side session: no cookie, nothing written to Redis."""
    token = gen_token(gen_client())
    before = set(redis_conn.scan_iter("*session*"))
    response = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert set(redis_conn.scan_iter("*session*")) == before
