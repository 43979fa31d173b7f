"""The production worker class builds the app once, before rq forks a horse per job."""

from provider_app import jobs
from provider_app.worker import Worker


def test_the_worker_builds_the_app_before_forking(monkeypatch, redis_conn):
    built = []
    monkeypatch.setattr(jobs, "_app", lambda: built.append(1))
    Worker(["high", "default", "low"], connection=redis_conn)
    assert built == [1]
