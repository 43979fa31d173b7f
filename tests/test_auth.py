"""Sign-in, lock-out, CSRF, sign-out and session handling."""

import time

from sqlalchemy import select

from provider_app.models import AuditEvent
from provider_app.vocab import Role
from tests.factories import PASSWORD, gen_client, gen_user


def sign_in(client, email, password):
    return client.post("/login", data={"email": email, "password": password})


def test_sign_in_with_the_right_password(client):
    # A client user: provider roles add the MFA step (tests/trust/test_mfa.py).
    user = gen_user(Role.CLIENT_USER, gen_client())
    response = sign_in(client, user.email, PASSWORD)
    assert response.status_code == 302
    assert client.get("/portal/").status_code == 200


def test_wrong_password_is_refused_and_audited(client, db):
    user = gen_user(Role.TEAM_LEAD)
    response = sign_in(client, user.email, "wrong password!")
    assert response.status_code == 401
    assert b"Wrong e-mail or password" in response.data
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.object_id == user.id)
    ).all()
    assert "auth.login_failed" in actions


def test_unknown_email_gets_the_same_message(client):
    response = sign_in(client, "nobody@example.test", "whatever-pass")
    assert response.status_code == 401
    assert b"Wrong e-mail or password" in response.data


def test_account_locks_after_five_failures(client):
    user = gen_user(Role.SPECIALIST)
    for _ in range(5):
        sign_in(client, user.email, "wrong password!")
    response = sign_in(client, user.email, PASSWORD)
    assert response.status_code == 401
    assert b"locked" in response.data


def test_invalid_form_shows_field_errors(client):
    response = client.post("/login", data={"email": "someone@x.test", "password": ""})
    assert response.status_code == 422
    assert b"This field is required" in response.data


def test_post_without_csrf_token_is_refused(client):
    user = gen_user(Role.TEAM_LEAD)
    response = client.post(
        "/login", data={"email": user.email, "password": PASSWORD}, no_csrf=True
    )
    assert response.status_code == 400


def test_sign_in_starts_a_fresh_session(client):
    user = gen_user(Role.TEAM_LEAD)
    with client.session_transaction() as session:
        session["planted"] = "by attacker"
    sign_in(client, user.email, PASSWORD)
    with client.session_transaction() as session:
        assert "planted" not in session


def test_open_redirect_is_ignored(client):
    user = gen_user(Role.TEAM_LEAD)
    response = client.post(
        "/login?next=//evil.example/x", data={"email": user.email, "password": PASSWORD}
    )
    assert "evil.example" not in response.headers["Location"]


def test_sign_out_ends_the_session(client):
    client.login(gen_user(Role.TEAM_LEAD))
    assert client.post("/logout").status_code == 302
    assert client.get("/board").status_code == 302


def test_idle_session_times_out(client):
    client.login(gen_user(Role.TEAM_LEAD))
    with client.session_transaction() as session:
        session["last_seen"] = time.time() - 31 * 60
    response = client.get("/board")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_session_cookie_is_hardened(client):
    user = gen_user(Role.TEAM_LEAD)
    response = sign_in(client, user.email, PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_passwords_are_argon2(db):
    user = gen_user(Role.TEAM_LEAD)
    assert user.password_hash.startswith("$argon2id$")


def test_a_hash_with_older_parameters_is_upgraded_at_sign_in(app, db):
    from argon2 import PasswordHasher

    from provider_app.accounts import authenticate
    from provider_app.passwords import needs_rehash

    user = gen_user(Role.CLIENT_USER, gen_client())
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=2048, parallelism=4).hash(PASSWORD)
    assert needs_rehash(user.password_hash)

    signed_in, problem = authenticate(user.email, PASSWORD)

    assert signed_in is user and problem is None
    assert not needs_rehash(user.password_hash)
    assert authenticate(user.email, PASSWORD)[0] is user
