"""Password change (signed in) and reset by e-mailed single-use link; lock-out notice."""

import re
from datetime import timedelta

from sqlalchemy import func, select

from provider_app.db_types import utcnow
from provider_app.models import AuditEvent, OutboxEmail, PasswordResetToken
from provider_app.passwords import verify_password
from provider_app.vocab import Role
from tests.factories import PASSWORD, gen_client, gen_user

NEW = "a much better passphrase"


def _mails(db, user) -> list[OutboxEmail]:
    return db.session.scalars(
        select(OutboxEmail).where(OutboxEmail.to_address == user.email).order_by(OutboxEmail.id)
    ).all()


def _without_csrf(page: bytes) -> bytes:
    """The page minus its CSRF token (signed with a timestamp, so it differs by the second)."""
    return re.sub(rb'name="csrf_token" type="hidden" value="[^"]+"', b"", page)


def _reset_link(mail: OutboxEmail) -> str:
    return re.search(r"http://localhost(/password/reset/\S+)", mail.body).group(1)


def test_five_wrong_passwords_lock_the_account_with_a_notice(client, db, sign_in):
    user = gen_user(Role.CLIENT_USER, gen_client())
    db.session.commit()
    for _ in range(5):
        assert sign_in(user.email, "wrong password!").status_code == 401
    assert sign_in(user.email).status_code == 401  # locked, even with the right password
    [notice] = _mails(db, user)
    assert notice.subject == "Your Throughline account was locked"
    assert "wrong password was entered five times" in notice.body
    assert "/password/forgot" in notice.body and PASSWORD not in notice.body
    actions = db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.object_id == user.id, AuditEvent.action.like("auth.%"))).all()
    assert actions.count("auth.login_failed") == 5 and "auth.login_locked" in actions


def test_change_password(client, db, redis_conn):
    user = gen_user(Role.CLIENT_USER, gen_client())
    db.session.commit()
    client.login(user)
    assert client.get("/account/password").status_code == 200
    wrong = client.post("/account/password", data={
        "current_password": "not it at all", "new_password": NEW, "confirm": NEW})
    assert wrong.status_code == 422 and b"current password is not right" in wrong.data
    weak = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "short", "confirm": "short"})
    assert weak.status_code == 422 and b"at least 10 characters" in weak.data
    mismatch = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": NEW, "confirm": NEW + "x"})
    assert mismatch.status_code == 422 and b"do not match" in mismatch.data

    ok = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": NEW, "confirm": NEW})
    assert ok.status_code == 302
    db.session.refresh(user)
    assert verify_password(user.password_hash, NEW)
    assert [m.subject for m in _mails(db, user)] == ["Your Throughline password was changed"]
    actions = db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.object_id == user.id, AuditEvent.action.like("auth.password%"))).all()
    assert actions == ["auth.password_change_failed", "auth.password_changed"]


def test_reset_never_reveals_whether_an_address_has_an_account(client, db, get_form):
    user = gen_user(Role.CLIENT_USER, gen_client())
    get_form("/password/forgot")
    known = client.post("/password/forgot", data={"email": user.email}, follow_redirects=True)
    get_form("/password/forgot")
    unknown = client.post("/password/forgot", data={"email": "nobody@example.test"},
                          follow_redirects=True)
    assert known.status_code == unknown.status_code == 200
    assert _without_csrf(known.data) == _without_csrf(unknown.data)
    assert len(_mails(db, user)) == 1
    assert db.session.scalar(select(func.count()).select_from(OutboxEmail).where(
        OutboxEmail.to_address == "nobody@example.test")) == 0


def test_reset_link_works_once(client, db, sign_in):
    user = gen_user(Role.CLIENT_USER, gen_client())
    db.session.commit()
    for _ in range(5):  # locked out first: the reset lifts it
        sign_in(user.email, "wrong password!")
    client.post("/password/forgot", data={"email": user.email})
    link = _reset_link(_mails(db, user)[-1])
    token = link.rsplit("/", 1)[1]
    assert db.session.scalar(select(func.count()).select_from(PasswordResetToken).where(
        PasswordResetToken.token_hash == token)) == 0  # only the hash is stored

    assert client.get(link).status_code == 200
    mismatch = client.post(link, data={"new_password": NEW, "confirm": "other"})
    assert mismatch.status_code == 422
    assert client.post(link, data={"new_password": NEW, "confirm": NEW}).status_code == 302
    assert client.get(link).status_code == 404
    again = client.post(link, data={"new_password": "yet another one!", "confirm":
                                    "yet another one!"})
    assert again.status_code == 404 and b"does not work" in again.data
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "auth.password_reset_failed")) == 1

    assert sign_in(user.email, NEW).status_code == 302  # lock lifted, new password works
    assert "auth.password_reset" in db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.object_id == user.id)).all()


def test_reset_link_expires(client, db):
    user = gen_user(Role.CLIENT_USER, gen_client())
    client.post("/password/forgot", data={"email": user.email})
    link = _reset_link(_mails(db, user)[-1])
    token_row = db.session.scalar(
        select(PasswordResetToken).where(PasswordResetToken.user_id == user.id))
    token_row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get(link).status_code == 404
    response = client.post(link, data={"new_password": NEW, "confirm": NEW})
    assert response.status_code == 404
    db.session.refresh(user)
    assert verify_password(user.password_hash, PASSWORD)


def test_only_the_newest_link_works(client, db):
    user = gen_user(Role.CLIENT_USER, gen_client())
    client.post("/password/forgot", data={"email": user.email})
    first = _reset_link(_mails(db, user)[-1])
    client.post("/password/forgot", data={"email": user.email})
    second = _reset_link(_mails(db, user)[-1])
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200


def test_reset_ends_existing_sessions_but_keeps_mfa(app, client, db, redis_conn, with_mfa):
    user = gen_user(Role.TEAM_LEAD)
    with_mfa(user)
    signed_in = app.test_client().login(user)
    assert signed_in.get("/board").status_code == 200
    client.post("/password/forgot", data={"email": user.email})
    link = _reset_link(_mails(db, user)[-1])
    assert client.post(link, data={"new_password": NEW, "confirm": NEW}).status_code == 302
    assert signed_in.get("/board").status_code == 302
    response = client.post("/login", data={"email": user.email, "password": NEW})
    assert response.headers["Location"].endswith("/login/verify")  # MFA still asked
