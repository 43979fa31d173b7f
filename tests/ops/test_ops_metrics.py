"""/metrics: guarded, and carrying latency, queue depths, job statistics and open tasks."""

from rq import SimpleWorker

from provider_app.jobs import enqueue_now, get_queue
from tests.ops.ops_support import make_app


def _scrape(client, **kwargs) -> str:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.status_code
    assert response.content_type.startswith("text/plain")
    return response.get_data(as_text=True)


def test_metrics_from_loopback_carry_every_family(client, redis_conn):
    client.get("/healthz")
    text = _scrape(client)
    assert ('throughline_http_request_duration_seconds_count{endpoint="ops.healthz",'
            'method="GET",status="200"}') in text
    for queue in ("high", "default", "low"):
        assert f'throughline_rq_queue_depth{{queue="{queue}"}} 0.0' in text
    for status in ("queued", "assigned", "in_progress", "in_qa"):
        assert f'throughline_open_tasks{{status="{status}"}}' in text
    assert 'throughline_open_tasks{status="completed"}' not in text  # open states only
    assert "throughline_metrics_queues_up 1.0" in text
    assert "throughline_metrics_tasks_up 1.0" in text


def test_metrics_are_hidden_from_other_addresses(client):
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 404
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 404  # loopback, but relayed by a proxy on this host


def test_metrics_token_is_required_when_configured(app, redis_conn):
    guarded = make_app(app, METRICS_TOKEN="scrape-secret-0123456789")
    client = guarded.test_client()
    assert client.get("/metrics").status_code == 404  # loopback alone is not enough now
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/metrics", headers=wrong).status_code == 404
    good = {"Authorization": "Bearer scrape-secret-0123456789"}
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert "throughline_rq_queue_depth" in _scrape(client, headers=good, environ_base=remote)


def test_queue_depth_job_durations_and_failures(client, db, redis_conn):
    enqueue_now("tests.ops.ops_support.echo_context")
    enqueue_now("tests.ops.ops_support.fail_always", queue="low")
    text = _scrape(client)
    assert 'throughline_rq_queue_depth{queue="default"} 1.0' in text
    assert 'throughline_rq_queue_depth{queue="low"} 1.0' in text

    queues = [get_queue("default"), get_queue("low")]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)
    text = _scrape(client)
    ok_job = 'job="tests.ops.ops_support.echo_context"'
    bad_job = 'job="tests.ops.ops_support.fail_always"'
    assert f"throughline_job_duration_seconds_count{{{ok_job}}} 1.0" in text
    assert f'throughline_job_duration_seconds_bucket{{{ok_job},le="+Inf"}} 1.0' in text
    assert f"throughline_job_failures_total{{{ok_job}}} 0.0" in text
    assert f"throughline_job_failures_total{{{bad_job}}} 1.0" in text


def test_a_broken_dependency_hides_only_its_own_metrics(app):
    broken = make_app(app, REDIS_URL="redis://127.0.0.1:1/0")
    text = _scrape(broken.test_client())
    assert "throughline_metrics_queues_up 0.0" in text
    assert "throughline_metrics_jobs_up 0.0" in text
    assert "throughline_metrics_tasks_up 1.0" in text
    assert "throughline_open_tasks" in text
