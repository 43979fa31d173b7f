"""/healthz and /readyz: dependencies reachable, schema at head, 503 otherwise."""

from sqlalchemy import text

from provider_app.ops import code_heads
from tests.ops.ops_support import CLOSED_PORT_REDIS, UNREACHABLE_DATABASE, make_app


def _stamp_head(db):
    """The test schema comes from create_all; record the migration head like `db upgrade`."""
    db.session.execute(text(
        "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) PRIMARY KEY)"
    ))
    db.session.execute(text("DELETE FROM alembic_version"))
    for head in code_heads():
        db.session.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head})


def test_healthz_reports_database_and_redis(client, redis_conn):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert response.headers["Cache-Control"] == "no-store"


def test_health_endpoints_need_no_sign_in(client):
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code in (200, 503), path
        assert "Location" not in response.headers


def test_readyz_is_ready_when_the_schema_is_at_head(client, db, redis_conn):
    _stamp_head(db)
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    checks = response.get_json()["checks"]
    assert checks["migrations"]["current"] == sorted(code_heads())


def test_readyz_is_not_ready_before_migrations(client, db, redis_conn):
    _stamp_head(db)
    db.session.execute(text("UPDATE alembic_version SET version_num = 'older_revision'"))
    response = client.get("/readyz")
    assert response.status_code == 503
    migrations = response.get_json()["checks"]["migrations"]
    assert migrations["ok"] is False
    assert migrations["current"] == ["older_revision"]
    assert migrations["head"] == sorted(code_heads())


def test_unreachable_redis_fails_health_but_keeps_the_node_ready(app, db):
    # Intake goes on without Redis (tests/trust/test_redis_down.py): the load balancer
    # keeps the node, monitoring alerts on /healthz.
    _stamp_head(db)
    db.session.commit()  # the 503 of /healthz rolls its request back, not this
    broken = make_app(app, REDIS_URL=CLOSED_PORT_REDIS)
    client = broken.test_client()
    for path, code, status in (("/healthz", 503, "fail"), ("/readyz", 200, "degraded")):
        response = client.get(path)
        assert response.status_code == code, (path, response.get_json())
        body = response.get_json()
        assert body["status"] == status
        assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError",
                                           "ms": body["checks"]["redis"]["ms"]}
        assert body["checks"]["database"]["ok"] is True
        assert "127.0.0.1:1" not in response.get_data(as_text=True)  # no connection details


def test_unreachable_database_answers_503(app):
    broken = make_app(app, SQLALCHEMY_DATABASE_URI=UNREACHABLE_DATABASE)
    client = broken.test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"]["ok"] is False
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["migrations"] == {
        "ok": False, "error": "database unreachable"}
