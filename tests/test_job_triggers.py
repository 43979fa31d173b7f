"""Once-key triggers sent by the process's trigger thread, once per window, on real Redis."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from flask import Flask

from provider_app.assignment.batch import JOB_PATH, REQUESTED_KEY, request_run
from provider_app.extensions import db as _db
from provider_app.job_triggers import TriggerCoalescer
from provider_app.jobs import enqueue_once, get_queue

TRIGGER = (JOB_PATH, REQUESTED_KEY, "default")


@pytest.fixture
def windowed(app: Flask) -> Iterator[Flask]:
    """The app with a trigger window, as production runs it (tests send inline)."""
    app.config["JOB_TRIGGER_WINDOW_SECONDS"] = 0.5  # long enough to see nothing sent yet
    app.extensions.pop("throughline_job_triggers", None)
    yield app
    app.config["JOB_TRIGGER_WINDOW_SECONDS"] = 0
    app.extensions.pop("throughline_job_triggers", None)


def _wait_for_jobs(count: int, seconds: float = 5) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        jobs = [j.description for j in get_queue("default").jobs]
        if len(jobs) >= count:
            return jobs
        time.sleep(0.01)
    return [j.description for j in get_queue("default").jobs]


def test_commits_in_a_window_cost_one_redis_call_and_one_run(windowed, db, redis_conn):
    for _ in range(5):
        with windowed.test_request_context("/api/v1/tasks", method="POST"):
            request_run()
            _db.session.commit()
    assert get_queue("default").count == 0  # nothing sent by the committing requests
    assert _wait_for_jobs(1) == [JOB_PATH]  # the thread sent one run for all five
    time.sleep(0.2)
    assert get_queue("default").count == 1


def test_a_job_or_command_sends_inline(windowed, db, redis_conn):
    """An RQ work horse ends with os._exit: a trigger thread there would never send."""
    request_run()
    _db.session.commit()
    assert [j.description for j in get_queue("default").jobs] == [JOB_PATH]
    assert windowed.extensions.get("throughline_job_triggers") is None


def test_a_rolled_back_request_triggers_nothing(windowed, db, redis_conn):
    with windowed.test_request_context("/api/v1/tasks", method="POST"):
        request_run()
        _db.session.rollback()
    time.sleep(0.2)
    assert get_queue("default").count == 0
    assert windowed.extensions.get("throughline_job_triggers") is None  # never recorded


def test_a_trigger_after_the_run_cleared_its_key_asks_again(windowed, app, redis_conn):
    sent: list = []
    coalescer = TriggerCoalescer(app, 60, sent.append)  # flushed by hand, not by its thread
    coalescer.add(TRIGGER)
    coalescer.add(TRIGGER)
    coalescer.flush()
    assert sent == [TRIGGER]  # one pass, one send, however many commits
    coalescer.flush()
    assert sent == [TRIGGER]  # nothing recorded since: nothing sent

    with app.app_context():
        enqueue_once(TRIGGER)
        enqueue_once(TRIGGER)  # the key is set: the waiting run will see this work
        assert get_queue("default").count == 1
        redis_conn.delete(REQUESTED_KEY)  # the run starts: clears the key, then reads
        enqueue_once(TRIGGER)
        assert get_queue("default").count == 2


def test_redis_down_is_logged_and_the_next_pass_goes_on(app, caplog):
    def refuse(trigger):
        raise ConnectionError("redis is down")

    coalescer = TriggerCoalescer(app, 60, refuse)
    coalescer.add(TRIGGER)
    with caplog.at_level(logging.WARNING):
        coalescer.flush()
    assert f"could not enqueue {JOB_PATH}" in caplog.text
    coalescer.add(TRIGGER)  # still usable
    with caplog.at_level(logging.WARNING):
        coalescer.flush()
    assert caplog.text.count("could not enqueue") == 2
