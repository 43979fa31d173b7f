"""Throughput of the integrations hot paths: the rule engine, e-mail intake over real SMTP
(aiosmtpd on loopback, one transaction per message, commit hooks included) and webhook
delivery (signing + POST to a loopback receiver + the log). Run from the repo root:

    python benchmarks/bench_integrations.py
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/throughline_bench_integrations \\
        python benchmarks/bench_integrations.py

The database is emptied and rebuilt (SQLite: a temporary file). Jobs go to the Redis
database ``BENCH_REDIS_URL`` (default index 11), which is flushed at the start and the end.
"""

from __future__ import annotations

import os
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.utils import make_msgid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis import Redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from provider_app import create_app  # noqa: E402
from provider_app.accounts import create_user  # noqa: E402
from provider_app.db_types import utcnow  # noqa: E402
from provider_app.demo_catalogue import TASK_TYPES  # noqa: E402
from provider_app.extensions import db  # noqa: E402
from provider_app.integrations import configuration, delivery, rules, webhooks  # noqa: E402
from provider_app.integrations.models import WebhookDelivery  # noqa: E402
from provider_app.integrations.smtp_server import make_controller  # noqa: E402
from provider_app.models import (  # noqa: E402  # noqa: E402
    CalendarVersion,
    Client,
    Contract,
    SlaTarget,
    Sop,
    Task,
    TaskType,
    User,
)
from provider_app.vocab import Role  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "300"))
EVALUATIONS = 20_000
RULES = 20
BODY = """Named insured: Acme Widgets LLC
Certificate holder name: City of Springfield
Certificate holder address: 1 Main St, Springfield IL
Policy numbers: GL-100200, AU-300400
Lines of coverage: GL, AUTO
Reference: AMS-{n}
"""


def build_app():
    tmp = tempfile.mkdtemp(prefix="bench-integrations-")
    url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
    return create_app({
        "SQLALCHEMY_DATABASE_URI": url, "UPLOAD_DIR": f"{tmp}/uploads",
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
        "SECRET_KEY": "bench-secret-key-which-is-long-enough-0123456789",
        "WEBHOOK_ALLOW_LOOPBACK": True, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024,
    })


def seed() -> tuple[Client, User]:
    spec = next(t for t in TASK_TYPES if t["code"] == "COI")
    coi = TaskType(code="COI", name=spec["name"], tier="BPO", intake_schema=spec["fields"])
    db.session.add(coi)
    db.session.flush()
    db.session.add(Sop(task_type_id=coi.id, version=1, published_at=utcnow()))
    client = Client(code="BENCH", name="Bench agency", kind="agency")
    db.session.add(client)
    db.session.flush()
    db.session.add(CalendarVersion(client_id=client.id, effective_from=utcnow().date().replace(
        year=2020), timezone="America/New_York", hours={str(d): [["09:00", "17:00"]]
                                                        for d in range(5)}))
    contract = Contract(client_id=client.id, name="MSA", starts_on=utcnow().date().replace(
        year=2020))
    contract.targets = [SlaTarget(task_type_id=coi.id, priority="normal", target_hours=4)]
    db.session.add(contract)
    lead = create_user("lead@bench.test", [Role.TEAM_LEAD], password="bench-password-1")
    configuration.add_sender(client, "@agency.test", lead)
    for n in range(RULES - 1):  # rules that do not match, then the routing rule
        configuration.save_rule(
            client, None, name=f"noise {n}", match_all=True, stop=False, enabled=True,
            conditions=[{"subject": "subject", "op": "contains", "value": f"nomatch-{n}"},
                        {"subject": "sender", "op": "regex", "value": r"@other\.test$"}],
            actions=[{"type": "add_tag", "value": f"t{n}"}], actor=lead)
    configuration.save_rule(
        client, None, name="Certificates", match_all=True, stop=False, enabled=True,
        conditions=[{"subject": "subject", "op": "any_of", "value": "certificate, coi"}],
        actions=[{"type": "set_task_type", "value": "COI"}], actor=lead)
    db.session.commit()
    return client, lead


def bench_rules(client: Client) -> None:
    from provider_app.integrations.automation import load_rules

    loaded = load_rules(client.id)
    facts = rules.Facts(source="email", sender="broker@agency.test",
                        subject="Certificate request", body=BODY.format(n=1))
    began = time.perf_counter()
    for _ in range(EVALUATIONS):
        rules.evaluate(loaded, facts)
    elapsed = time.perf_counter() - began
    print(f"rule engine: {EVALUATIONS:,} evaluations of {len(loaded)} rules in {elapsed:.2f} s "
          f"({EVALUATIONS / elapsed:,.0f} requests/s)")


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def bench_smtp(app, client: Client) -> None:
    port = 2600 + os.getpid() % 1000
    controller = make_controller(app, "127.0.0.1", port)
    controller.start()
    latencies = []
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            for n in range(MESSAGES):
                message = EmailMessage()
                message["From"] = "broker@agency.test"
                message["To"] = "bench@intake.localhost"
                message["Subject"] = f"Certificate request {n}"
                message["Message-ID"] = make_msgid(domain="agency.test")
                message.set_content(BODY.format(n=n))
                began = time.perf_counter()
                smtp.send_message(message)
                latencies.append(time.perf_counter() - began)
    finally:
        controller.stop()
    db.session.commit()  # end this session's snapshot: the receiver committed elsewhere
    created = db.session.scalar(select(func.count()).select_from(Task).where(
        Task.client_id == client.id, Task.source == "email"))
    total = sum(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"e-mail intake over SMTP: {MESSAGES} messages -> {created} tasks in {total:.2f} s "
          f"({MESSAGES / total:,.1f} messages/s; per message p50 "
          f"{statistics.median(latencies) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms)")


def bench_webhooks() -> None:
    ids = db.session.scalars(select(WebhookDelivery.id).order_by(WebhookDelivery.id)).all()
    began = time.perf_counter()
    for delivery_id in ids:
        delivery.deliver(delivery_id)
    elapsed = time.perf_counter() - began
    done = db.session.scalar(select(func.count()).select_from(WebhookDelivery).where(
        WebhookDelivery.status == "succeeded"))
    print(f"webhook delivery: {len(ids)} signed POSTs ({done} succeeded) in {elapsed:.2f} s "
          f"({len(ids) / elapsed:,.1f} deliveries/s, one worker)")


def main() -> None:
    app = build_app()
    redis = Redis.from_url(app.config["REDIS_URL"])
    redis.flushdb()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with app.app_context():
            db.drop_all()
            db.create_all()
            client, _lead = seed()
            webhooks.create_endpoint(client, f"http://127.0.0.1:{server.server_address[1]}/h",
                                     ["task.created"], actor=None)
            db.session.commit()
            bench_rules(client)
            bench_smtp(app, client)
            bench_webhooks()
            db.session.remove()
            db.drop_all()
    finally:
        server.shutdown()
        redis.flushdb()


if __name__ == "__main__":
    main()
