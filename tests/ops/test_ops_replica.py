"""Report queries run on the read replica when DATABASE_REPLICA_URL is set, read-only always."""

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from provider_app.extensions import db as _db
from provider_app.models import Client
from provider_app.replica import report_engine, report_session, uses_replica
from provider_app.settings import from_environment
from tests.conftest import is_postgres
from tests.ops.ops_support import make_app


def _replica_url(app, tmp_path) -> str:
    """On PostgreSQL the same database under another application_name, to tell them apart."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if is_postgres(app):
        return url.update_query_dict({"application_name": "tl_replica"}).render_as_string(
            hide_password=False)
    return f"sqlite:///{tmp_path / 'replica.db'}"


def test_the_environment_maps_the_replica_url_to_a_bind(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_REPLICA_URL", "postgresql://reader@replica-host:5432/tl")
    config = from_environment(tmp_path)
    assert config["SQLALCHEMY_BINDS"] == {
        "replica": "postgresql+psycopg://reader@replica-host:5432/tl"}


def test_without_a_replica_reports_use_the_primary(app):
    with app.app_context():
        assert not uses_replica()
        assert report_engine() is _db.engine
        with report_session() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1


def test_with_a_replica_reports_run_there(app, tmp_path):
    replica_url = _replica_url(app, tmp_path)
    split = make_app(app, SQLALCHEMY_BINDS={"replica": replica_url})
    with split.app_context():
        assert uses_replica()
        assert report_engine() is _db.engines["replica"]
        assert report_engine() is not _db.engine
        with report_session() as session:
            if is_postgres(app):
                name = session.execute(text("SELECT current_setting('application_name')"))
                assert name.scalar() == "tl_replica"
                # The replica holds the same schema: a real report query works.
                assert session.execute(select(func.count()).select_from(Client)).scalar() >= 0
            else:
                assert session.get_bind().url.database.endswith("replica.db")
        # The primary is untouched for everything else.
        assert _db.session.get_bind().url == _db.engine.url
        for engine in _db.engines.values():
            engine.dispose()


@pytest.mark.postgres_only
def test_report_sessions_are_read_only(app):
    if not is_postgres(app):
        pytest.skip("read-only transactions are enforced on PostgreSQL only")
    with (app.app_context(), report_session() as session,
          pytest.raises(DBAPIError, match="read-only transaction")):
        session.execute(text("CREATE TEMPORARY TABLE should_fail (x int)"))
