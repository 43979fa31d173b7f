"""Request ids: accepted or generated, echoed, logged as JSON, carried into jobs."""

import io
import json
import logging

from rq import SimpleWorker

from provider_app.jobs import enqueue_after_commit, enqueue_now, get_queue
from provider_app.logging_setup import json_handler
from provider_app.request_id import HEADER, current_request_id


def test_an_incoming_request_id_is_echoed(client):
    response = client.get("/login", headers={HEADER: "lb-7f3a.42"})
    assert response.headers[HEADER] == "lb-7f3a.42"


def test_a_missing_or_unsafe_request_id_is_replaced(client):
    generated = client.get("/login").headers[HEADER]
    assert len(generated) == 32
    unsafe = client.get("/login", headers={HEADER: "x\" onload=alert(1)"}).headers[HEADER]
    assert unsafe != "x\" onload=alert(1)" and len(unsafe) == 32
    assert client.get("/login").headers[HEADER] != generated


def test_the_request_id_is_gone_after_the_request(client):
    client.get("/login", headers={HEADER: "short-lived"})
    assert current_request_id() is None


def test_log_lines_are_json_with_the_request_id(app):
    stream = io.StringIO()
    handler = json_handler(stream)
    logger = logging.getLogger("throughline.test.request")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with app.test_request_context("/", headers={HEADER: "rid-json-1"}):
            app.preprocess_request()
            logger.info("hello %s", "world")
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["message"] == "hello world"
    assert line["request_id"] == "rid-json-1"
    assert line["level"] == "INFO" and line["logger"] == "throughline.test.request"
    assert "ts" in line


def test_a_job_runs_under_the_request_id_that_enqueued_it(app, db, redis_conn):
    with app.test_request_context("/", headers={HEADER: "rid-into-job"}):
        app.preprocess_request()
        job = enqueue_now("tests.ops.ops_support.echo_context")
    assert job.meta["request_id"] == "rid-into-job"

    stream = io.StringIO()
    handler = json_handler(stream)
    logging.getLogger().addHandler(handler)
    logging.getLogger("throughline.test.job").setLevel(logging.INFO)
    try:
        queue = get_queue("default")
        SimpleWorker([queue], connection=queue.connection).work(burst=True)
    finally:
        logging.getLogger().removeHandler(handler)
    job.refresh()
    assert job.return_value() == {"request_id": "rid-into-job", "job_id": job.id}
    inside = [json.loads(line) for line in stream.getvalue().splitlines()
              if '"inside the job"' in line]
    assert inside and inside[0]["request_id"] == "rid-into-job"
    assert inside[0]["job_id"] == job.id
    assert current_request_id() is None


def test_jobs_enqueued_after_commit_keep_the_request_id(app, db, redis_conn):
    with app.test_request_context("/", headers={HEADER: "rid-after-commit"}):
        app.preprocess_request()
        enqueue_after_commit("tests.ops.ops_support.echo_context")
        db.session.commit()
    (job,) = get_queue("default").get_jobs()
    assert job.meta["request_id"] == "rid-after-commit"


def test_a_job_without_a_request_logs_under_its_own_id(app, db, redis_conn):
    job = enqueue_now("tests.ops.ops_support.echo_context")
    assert not job.meta.get("request_id")
    queue = get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    job.refresh()
    assert job.return_value() == {"request_id": job.id, "job_id": job.id}
