"""The admin audit page and CSV export; audit rows cannot be changed by the application."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from provider_app.audit import AuditImmutableError, record
from provider_app.models import AuditEvent
from provider_app.vocab import Role
from tests.factories import gen_client, gen_task, gen_task_type, gen_user


@pytest.fixture
def trail(db):
    """A few events across two clients, two actors and two days."""
    a, b = gen_client("AUDA"), gen_client("AUDB")
    alice = gen_user(Role.CLIENT_ADMIN, a, email="alice@auda.test")
    bob = gen_user(Role.TEAM_LEAD, email="bob@provider.test")
    task = gen_task(a, gen_task_type())
    day1 = datetime(2031, 3, 1, 12, tzinfo=UTC)
    day2 = datetime(2031, 3, 5, 12, tzinfo=UTC)
    events = {
        "a_login": record("auth.login", object_type="user", object_id=alice.id, client_id=a.id,
                          actor=alice, at=day1),
        "b_note": record("message.note", object_type="task", object_id=task.id, client_id=a.id,
                         actor=bob, at=day2, reason="=HYPERLINK(\"http://x\")"),
        "other": record("token.create", object_type="api_token", object_id=99, client_id=b.id,
                        actor=bob, at=day2),
        "denied": record("access.denied", object_type="route", actor=bob, at=day1,
                         reason="GET /admin: your role does not allow this page"),
    }
    db.session.commit()  # kept when a request answers 4xx and rolls its own work back
    return {"a": a, "b": b, "alice": alice, "bob": bob, "task": task, **events}


def _ids(client, query: str) -> list[str]:
    body = client.get(f"/admin/audit?{query}").get_data(as_text=True)
    return [action for action in ("auth.login", "message.note", "token.create",
                                  "access.denied") if f"<code>{action}</code>" in body]


def test_only_admins_see_the_audit_trail(client, db, trail):
    for role, owner in [(Role.TEAM_LEAD, None), (Role.CLIENT_ADMIN, trail["a"]),
                        (Role.SPECIALIST, None)]:
        client.login(gen_user(role, owner))
        assert client.get("/admin/audit").status_code == 403
        assert client.get("/admin/audit.csv").status_code == 403


def test_filters(client, db, trail):
    client.login(gen_user(Role.ADMIN))
    base = "date_from=2031-03-01&date_to=2031-03-31"
    assert _ids(client, base) == ["auth.login", "message.note", "token.create", "access.denied"]
    assert _ids(client, f"{base}&client=AUDA") == ["auth.login", "message.note"]
    assert _ids(client, f"{base}&client=-") == ["access.denied"]
    assert _ids(client, f"{base}&actor=BOB@provider") == ["message.note", "token.create",
                                                         "access.denied"]
    assert _ids(client, f"{base}&object_type=task") == ["message.note"]
    assert _ids(client, f"{base}&object_type=task&object_id={trail['task'].public_id}") == [
        "message.note"]
    assert _ids(client, f"{base}&object_id=99") == ["token.create"]
    assert _ids(client, f"{base}&action=auth.") == ["auth.login"]
    assert _ids(client, "date_from=2031-03-02&date_to=2031-03-05") == ["message.note",
                                                                      "token.create"]
    assert _ids(client, "date_to=2031-03-01&date_from=2031-03-01") == ["auth.login",
                                                                      "access.denied"]
    empty = client.get("/admin/audit?action=nothing.like.this").get_data(as_text=True)
    assert "No audit events match" in empty


def test_bad_filters_get_field_errors(client, db, trail):
    client.login(gen_user(Role.ADMIN))
    db.session.commit()
    response = client.get("/admin/audit?date_from=2031-03-05&date_to=2031-03-01"
                          "&object_id=../etc&client=NOPE")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "The end date is before the start date." in body
    assert "a task&#39;s 32-character id" in body or "32-character id" in body
    assert "Not a valid choice" in body
    assert client.get("/admin/audit.csv?date_from=yesterday").status_code == 422


def test_pagination(app, client, db, monkeypatch):
    monkeypatch.setitem(app.config, "PAGE_SIZE", 2)
    at = datetime(2032, 1, 1, tzinfo=UTC)
    for n in range(5):
        record("test.page", object_type="thing", object_id=n, at=at + timedelta(minutes=n))
    client.login(gen_user(Role.ADMIN))
    page3 = client.get("/admin/audit?action=test.page&page=3").get_data(as_text=True)
    assert "Page 3 of 3" in page3 and "#0" in page3 and "#4" not in page3


def test_csv_export_streams_the_same_filter(client, db, trail):
    admin = gen_user(Role.ADMIN)
    client.login(admin)
    response = client.get("/admin/audit.csv?client=AUDA&date_from=2031-03-01")
    assert response.status_code == 200
    assert response.is_streamed and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["action"] for r in rows] == ["message.note", "auth.login"]
    assert rows[0]["actor"] == "bob@provider.test" and rows[0]["client"] == "AUDA"
    assert rows[0]["object"] == trail["task"].public_id
    assert rows[0]["reason"].startswith("'=")  # no formula injection into spreadsheets
    exported = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "audit.export",
                                                          AuditEvent.actor_id == admin.id))
    assert exported.after == {"filters": {"client": "AUDA", "date_from": "2031-03-01"}}


def test_audit_rows_cannot_be_changed_or_deleted(db, trail):
    event = trail["a_login"]
    event.reason = "rewritten"
    with pytest.raises(AuditImmutableError):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.get(AuditEvent, trail["other"].id))
    with pytest.raises(AuditImmutableError):
        db.session.flush()


def test_access_denials_are_audited(client, db):
    user = gen_user(Role.CLIENT_USER, gen_client())
    client.login(user)
    assert client.get("/admin/audit").status_code == 403
    denial = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "access.denied",
                                                        AuditEvent.actor_id == user.id))
    assert denial is not None and "/admin/audit" in denial.reason
