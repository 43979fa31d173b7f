"""TOTP multi-factor sign-in: required for provider staff, available to everyone."""

import re
import time

import pyotp
from sqlalchemy import select

from provider_app import mfa
from provider_app.models import AuditEvent, OutboxEmail
from provider_app.vocab import Role
from tests.factories import PASSWORD, gen_client, gen_user


def _actions(db, user) -> list[str]:
    return db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.object_id == user.id,
                                        AuditEvent.object_type == "user")
        .order_by(AuditEvent.id)
    ).all()


def test_provider_without_mfa_must_enrol_before_any_page(client, db, redis_conn, sign_in,
                                                        get_form):
    lead = gen_user(Role.TEAM_LEAD)
    db.session.commit()
    response = sign_in(lead.email)
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/enrol")
    assert client.get("/board").status_code == 302  # not signed in yet

    page = get_form("/login/enrol")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    secret = re.search(r'id="mfa-key" type="text" value="([A-Z2-7]+)"', text).group(1)
    assert "otpauth://totp/" in text and 'src="data:image/svg+xml' in text

    wrong = client.post("/login/enrol", data={"code": "000000"})
    assert wrong.status_code == 422 and b"does not match" in wrong.data

    done = client.post("/login/enrol", data={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302 and done.headers["Location"].endswith("/account/recovery-codes")
    codes_page = client.get("/account/recovery-codes").get_data(as_text=True)
    assert len(re.findall(r"<code>[0-9a-f]{5}-[0-9a-f]{5}</code>", codes_page)) == 10
    assert client.get("/account/recovery-codes").status_code == 302  # shown once only
    assert client.get("/board").status_code == 200

    db.session.refresh(lead)
    assert mfa.is_enabled(lead)
    assert secret not in lead.mfa_secret  # encrypted at rest
    assert mfa.decrypt_secret(lead.mfa_secret) == secret
    assert secret not in client.get("/account").get_data(as_text=True)  # never shown again
    assert db.session.scalar(select(OutboxEmail).where(
        OutboxEmail.to_address == lead.email, OutboxEmail.subject.contains("Multi-factor")))
    assert _actions(db, lead)[-2:] == ["auth.mfa_enrolled", "auth.login"]


def test_the_second_step_asks_for_the_code(client, db, redis_conn, sign_in, with_mfa, codes):
    lead = gen_user(Role.TEAM_LEAD)
    secret = with_mfa(lead)
    response = sign_in(lead.email)
    assert response.headers["Location"].endswith("/login/verify")
    assert client.get("/board").status_code == 302

    wrong = client.post("/login/verify", data={"code": "123456"})
    assert wrong.status_code == 401 and b"not right" in wrong.data
    assert client.post("/login/verify", data={"code": codes.now(secret)}).status_code == 302
    assert client.get("/board").status_code == 200
    actions = _actions(db, lead)
    assert {"auth.password_ok", "auth.mfa_failed", "auth.mfa_ok", "auth.login"} <= set(actions)
    # No code or secret ever lands in the audit trail.
    rows = db.session.scalars(select(AuditEvent).where(AuditEvent.object_id == lead.id)).all()
    blob = " ".join(f"{r.reason} {r.before} {r.after}" for r in rows)
    assert codes.now(secret) not in blob and secret not in blob


def test_a_replayed_code_is_refused(app, client, db, redis_conn, sign_in, with_mfa, codes):
    lead = gen_user(Role.TEAM_LEAD)
    secret = with_mfa(lead)
    code = codes.now(secret)
    sign_in(lead.email)
    assert client.post("/login/verify", data={"code": code}).status_code == 302
    client.post("/logout")

    sign_in(lead.email)
    replay = client.post("/login/verify", data={"code": code})
    assert replay.status_code == 401
    assert db.session.scalar(select(AuditEvent.reason).where(
        AuditEvent.action == "auth.mfa_failed", AuditEvent.object_id == lead.id)
    ) == "code already used"
    assert client.post("/login/verify", data={"code": codes.next(secret)}).status_code == 302


def test_drift_window_is_one_step(db):
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    now = time.time()
    step = totp.timecode(now)
    assert mfa.matching_step(secret, totp.at(now - 30), at=now) == step - 1
    assert mfa.matching_step(secret, totp.at(now + 30), at=now) == step + 1
    assert mfa.matching_step(secret, totp.at(now - 60), at=now) is None
    assert mfa.matching_step(secret, "12 34 5x", at=now) is None


def test_a_recovery_code_works_once(client, db, redis_conn, sign_in):
    user = gen_user(Role.SPECIALIST)
    secret = pyotp.random_base32()
    recovery = mfa.enable(user, secret, pyotp.TOTP(secret).now())
    sign_in(user.email)
    used = client.post("/login/verify", data={"code": recovery[0].upper()})
    assert used.status_code == 302
    client.post("/logout")
    sign_in(user.email)
    assert client.post("/login/verify", data={"code": recovery[0]}).status_code == 401
    assert client.post("/login/verify", data={"code": recovery[1]}).status_code == 302


def test_wrong_codes_lock_the_account_and_send_a_notice(client, db, redis_conn, sign_in,
                                                          with_mfa, codes):
    user = gen_user(Role.QA_REVIEWER)
    secret = with_mfa(user)
    sign_in(user.email)
    for _ in range(4):
        assert client.post("/login/verify", data={"code": "000000"}).status_code == 401
    locked = client.post("/login/verify", data={"code": "000000"})
    assert locked.status_code == 302 and locked.headers["Location"].endswith("/login")
    notice = db.session.scalar(select(OutboxEmail).where(OutboxEmail.to_address == user.email))
    assert "locked" in notice.subject and "authentication code was wrong" in notice.body
    # Even the right password and code are refused while locked.
    assert sign_in(user.email).status_code == 401
    assert client.post("/login/verify", data={"code": codes.next(secret)}).status_code == 302
    assert client.get("/qa/").status_code == 302


def test_the_code_step_expires(client, db, redis_conn, sign_in, with_mfa, codes):
    user = gen_user(Role.TEAM_LEAD)
    secret = with_mfa(user)
    sign_in(user.email)
    with client.session_transaction() as session:
        pending = dict(session["pending"])
        pending["at"] = time.time() - 11 * 60
        session["pending"] = pending
    response = client.post("/login/verify", data={"code": codes.now(secret)})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert client.get("/board").status_code == 302


def test_code_pages_need_the_password_step_first(client, redis_conn):
    for path in ("/login/verify", "/login/enrol"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith("/login")


def test_client_users_may_turn_mfa_on_and_off(client, db, redis_conn, sign_in, codes,
                                               get_form):
    user = gen_user(Role.CLIENT_USER, gen_client())
    db.session.commit()
    assert sign_in(user.email).headers["Location"].endswith("/")  # no MFA asked
    page = get_form("/account").get_data(as_text=True)
    secret = re.search(r'id="mfa-key" type="text" value="([A-Z2-7]+)"', page).group(1)
    response = client.post("/account/mfa", data={"code": codes.now(secret)})
    assert response.headers["Location"].endswith("/account/recovery-codes")
    client.post("/logout")

    assert sign_in(user.email).headers["Location"].endswith("/login/verify")
    assert client.post("/login/verify", data={"code": codes.next(secret)}).status_code == 302
    wrong = client.post("/account/mfa/disable", data={"password": "not my password"})
    assert wrong.status_code == 422
    off = client.post("/account/mfa/disable", data={"password": PASSWORD})
    assert off.status_code == 302
    db.session.refresh(user)
    assert not mfa.is_enabled(user)


def test_provider_staff_cannot_turn_mfa_off(client, db, redis_conn, with_mfa):
    lead = gen_user(Role.TEAM_LEAD)
    with_mfa(lead)
    client.login(lead)
    assert client.post("/account/mfa/disable", data={"password": PASSWORD}).status_code == 403
    db.session.refresh(lead)
    assert mfa.is_enabled(lead)


def test_new_recovery_codes_need_the_password(client, db, redis_conn, with_mfa):
    user = gen_user(Role.SPECIALIST)
    with_mfa(user)
    client.login(user)
    assert client.post("/account/mfa/recovery-codes",
                       data={"password": "wrong one!!"}).status_code == 422
    response = client.post("/account/mfa/recovery-codes", data={"password": PASSWORD})
    assert response.headers["Location"].endswith("/account/recovery-codes")
    assert client.get("/account/recovery-codes").get_data(as_text=True).count("<code>") == 10


def test_the_requirement_can_be_switched_off(app, client, redis_conn, sign_in, monkeypatch):
    monkeypatch.setitem(app.config, "MFA_REQUIRED_FOR_PROVIDER", False)
    lead = gen_user(Role.TEAM_LEAD)
    sign_in(lead.email)
    assert client.get("/board").status_code == 200


def test_totp_code_cli_is_for_development_only(app, db, with_mfa, monkeypatch):
    user = gen_user(Role.SPECIALIST)
    secret = with_mfa(user)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["totp-code", "--email", user.email])
    assert result.exit_code == 0 and result.output.strip() == pyotp.TOTP(secret).now()
    assert runner.invoke(args=["totp-code", "--email", "nobody@x.test"]).exit_code != 0
    monkeypatch.setenv("THROUGHLINE_ENV", "production")
    refused = runner.invoke(args=["totp-code", "--email", user.email])
    assert refused.exit_code != 0 and "production" in refused.output


def test_reset_mfa_cli(app, db, with_mfa):
    user = gen_user(Role.SPECIALIST)
    with_mfa(user)
    result = app.test_cli_runner().invoke(args=["reset-mfa", "--email", user.email])
    assert result.exit_code == 0, result.output
    db.session.refresh(user)
    assert not mfa.is_enabled(user)
