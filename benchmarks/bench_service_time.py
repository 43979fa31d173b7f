"""Service time of the hot pages and API calls, one request at a time, on the scale data set.

The load test measures what 50 concurrent users see; this measures what one request
costs when nothing else waits in front of it (wall time and the app process's CPU
time), which is the figure to compare with the targets when the machine is shared.
It runs the real app in-process (Flask test client) against ``DATABASE_URL``, which
must hold the ``seed-scale`` data set, signing in through ``/login`` as each role.

    DATABASE_URL=postgresql://…/throughline_load REDIS_URL=redis://127.0.0.1:6379/0 \\
        python benchmarks/bench_service_time.py --repeat 15
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

# The package is not installed; make the repo root importable when run as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402

from provider_app import create_app  # noqa: E402
from provider_app.accounts import issue_token  # noqa: E402
from provider_app.demo import DEMO_PASSWORD  # noqa: E402
from provider_app.extensions import db  # noqa: E402
from provider_app.models import Client, Task, User, UserRole  # noqa: E402
from provider_app.vocab import Role  # noqa: E402

CLIENT_CODE = "SC007"


def sign_in(app, email: str):
    """Sign in through the real form (CSRF token included), as a browser does."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    response = client.post("/login", data={"email": email, "password": DEMO_PASSWORD,
                                            "csrf_token": token.group(1) if token else ""})
    if response.status_code != 302 or "/login" in response.headers.get("Location", "/login"):
        raise SystemExit(f"could not sign in as {email} (HTTP {response.status_code})")
    return client


def first_email(role: Role, pattern: str) -> str:
    return db.session.scalars(
        select(User.email).join(UserRole)
        .where(UserRole.role == role, User.email.like(pattern)).order_by(User.email).limit(1)
    ).one()


def measure(label: str, call, repeat: int) -> None:
    call()  # warm the caches the first request fills
    wall, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = call()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        if response.status_code not in (200, 201):
            raise SystemExit(f"{label}: HTTP {response.status_code}")
    print(f"{label:30} wall p50 {statistics.median(wall):7.1f} ms   max {max(wall):7.1f} ms"
          f"   app CPU p50 {statistics.median(cpu):6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    app = create_app({"RATELIMIT_ENABLED": False, "MFA_REQUIRED_FOR_PROVIDER": False,
                      "THROUGHLINE_ENV": "development", "SESSION_COOKIE_SECURE": False})
    with app.app_context():
        client_row = db.session.scalars(select(Client).where(Client.code == CLIENT_CODE)).first()
        if client_row is None:
            raise SystemExit("no scale data: run `flask --app wsgi seed-scale` first")
        token = issue_token(client_row, name="bench_service_time")[0]
        db.session.commit()
        one = db.session.scalar(select(Task.public_id).where(Task.client_id == client_row.id)
                                .order_by(Task.id.desc()).limit(1))
        people = {
            "client": f"user@{CLIENT_CODE.lower()}.test",
            "lead": first_email(Role.TEAM_LEAD, "scale.%"),
            "qa": first_email(Role.QA_REVIEWER, "scale.qa%"),
            "specialist": "scale.specialist003@throughline.test",
        }
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.repeat} requests each")
    measure("GET /api/v1/tasks", lambda: api.get("/api/v1/tasks", headers=bearer), args.repeat)
    measure("GET /api/v1/tasks?page=10",
            lambda: api.get("/api/v1/tasks?page=10", headers=bearer), args.repeat)
    measure("GET /api/v1/tasks/<id>", lambda: api.get(f"/api/v1/tasks/{one}", headers=bearer),
            args.repeat)
    measure("POST /api/v1/tasks", lambda: api.post(
        "/api/v1/tasks", json={"task_type": "DATA", "fields": {"description": "bench"}},
        headers={**bearer, "Idempotency-Key": uuid.uuid4().hex}), args.repeat)
    portal = sign_in(app, people["client"])
    for path in ("/portal/", "/portal/tasks", "/portal/tasks?page=5", f"/portal/tasks/{one}"):
        measure(f"GET {path.replace(one, '<id>')}", lambda p=path: portal.get(p), args.repeat)
    lead = sign_in(app, people["lead"])
    for path in ("/board", "/escalations"):
        measure(f"GET {path}", lambda p=path: lead.get(p), args.repeat)
    reviewer = sign_in(app, people["qa"])
    measure("GET /qa/", lambda: reviewer.get("/qa/"), args.repeat)
    specialist = sign_in(app, people["specialist"])
    measure("GET /work", lambda: specialist.get("/work"), args.repeat)


if __name__ == "__main__":
    main()
