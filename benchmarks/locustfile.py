"""Load test: client systems, client users, specialists and leads at once (scripts/load_test.sh).

Four kinds of simulated people share the users (50 by default) and are spread
over every web instance in ``TL_HOSTS`` in turn, so two gunicorn instances
take the load the way two machines behind a load balancer would:

* **API client** (integration): ``POST /api/v1/tasks`` with an Idempotency-Key
  (one in ten is a retry of the previous key, which must answer 200), list
  pages, read one task;
* **portal user**: home, task list pages and filters, a task's detail;
* **specialist**: my work, "get next" (``POST /work/next``), start, tick the SOP
  steps, submit: the whole pull-mode loop through the real forms and CSRF;
* **team lead**: the board (and its filters), the QA queue, escalations.

Configuration (environment; the script fills it from the seeded data):
``TL_HOSTS`` (comma-separated base URLs), ``TL_TOKENS`` (client API tokens),
``TL_CLIENT_USERS``, ``TL_SPECIALISTS``, ``TL_LEADS`` (sign-in e-mails),
``TL_PASSWORD``. ``TL_GET_NEXT_PATH`` (default ``/work/next``) points the
specialist loop elsewhere; when that route answers 404 the loop is skipped
and said so once. Request names group URLs by route (``/portal/tasks/[id]``).
At the end a summary prints p50/p95/p99 for pages and for the API against the
targets (pages p95 < 300 ms, API p95 < 150 ms).
"""

from __future__ import annotations

import itertools
import os
import random
import re
import uuid
from html.parser import HTMLParser

from locust import HttpUser, between, events, task
from locust.stats import StatsEntry

HOSTS = [h.strip() for h in os.environ.get("TL_HOSTS", "http://127.0.0.1:8000").split(",")]
PASSWORD = os.environ.get("TL_PASSWORD", "demo-password-1")
GET_NEXT_PATH = os.environ.get("TL_GET_NEXT_PATH", "/work/next")
PAGE_P95_MS, API_P95_MS = 300, 150


def _listed(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


_host_cycle = itertools.cycle(HOSTS)
_pools: dict[str, itertools.cycle] = {}


def _next_of(pool: str) -> str:
    if pool not in _pools:
        values = _listed(pool)
        if not values:
            raise RuntimeError(f"{pool} is empty: run the load test through scripts/load_test.sh")
        _pools[pool] = itertools.cycle(values)
    return next(_pools[pool])


class Forms(HTMLParser):
    """The forms of a page: action -> hidden and text inputs (enough for our own pages)."""

    def __init__(self, html: str):
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append((a.get("action") or "", {}))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1][1].setdefault(a["name"], a.get("value") or "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def form(self, action_suffix: str) -> tuple[str, dict[str, str]] | None:
        return next(((act, data) for act, data in self.forms if act.endswith(action_suffix)),
                    None)


TASK_LINK = re.compile(r"/(portal|board|work)/tasks/([0-9a-f]{32})")


class SpreadUser(HttpUser):
    """A user pinned to one web instance, the instances taken in turn."""

    abstract = True
    wait_time = between(0.5, 1.5)

    def __init__(self, environment):
        self.host = next(_host_cycle)
        super().__init__(environment)

    def sign_in(self, email: str) -> None:
        page = self.client.get("/login", name="/login")
        token = next((data["csrf_token"] for _, data in Forms(page.text).forms
                      if "csrf_token" in data), "")
        with self.client.post("/login", data={"email": email, "password": PASSWORD,
                                               "csrf_token": token},
                              name="/login [POST]", catch_response=True) as response:
            if "/login" in response.url:
                response.failure(f"sign-in failed for {email}")


class ApiClient(SpreadUser):
    weight = 20

    def on_start(self):
        self.headers = {"Authorization": f"Bearer {_next_of('TL_TOKENS')}"}
        self.created: list[str] = []
        self.last: tuple[str, dict] | None = None

    @task(4)
    def send_task(self):
        if self.last and random.random() < 0.1:
            key, body, expected = *self.last, 200  # a client retrying after a timeout
        else:
            key = uuid.uuid4().hex
            body = {"task_type": "DATA", "priority": random.choice(["normal", "high", "low"]),
                    "external_ref": f"LT-{key[:12]}", "state": "NY",
                    "fields": {"description": f"Load test entry {key[:8]}"}}
            expected = 201
        with self.client.post("/api/v1/tasks", json=body, headers={**self.headers,
                              "Idempotency-Key": key}, name="/api/v1/tasks [POST]",
                              catch_response=True) as response:
            if response.status_code != expected:
                response.failure(f"expected {expected}, got {response.status_code}")
            else:
                self.last = (key, body)
                self.created.append(response.json()["id"])
                del self.created[:-50]

    @task(4)
    def list_tasks(self):
        page = random.choice([1, 1, 1, 2, 3, 10])
        self.client.get(f"/api/v1/tasks?page={page}", headers=self.headers,
                        name="/api/v1/tasks")

    @task(2)
    def read_task(self):
        if self.created:
            self.client.get(f"/api/v1/tasks/{random.choice(self.created)}",
                            headers=self.headers, name="/api/v1/tasks/[id]")


class PortalUser(SpreadUser):
    weight = 12

    def on_start(self):
        self.sign_in(_next_of("TL_CLIENT_USERS"))
        self.seen: list[str] = []

    @task(2)
    def home(self):
        self.client.get("/portal/", name="/portal/")

    @task(4)
    def task_list(self):
        page = random.choice([1, 1, 2, 5])
        response = self.client.get(f"/portal/tasks?page={page}", name="/portal/tasks")
        self.seen = [m.group(2) for m in TASK_LINK.finditer(response.text)][:25] or self.seen

    @task(1)
    def filtered(self):
        status = random.choice(["queued", "in_progress", "completed", "pending_client"])
        self.client.get(f"/portal/tasks?status={status}", name="/portal/tasks?status=")

    @task(3)
    def detail(self):
        if self.seen:
            self.client.get(f"/portal/tasks/{random.choice(self.seen)}",
                            name="/portal/tasks/[id]")


class Specialist(SpreadUser):
    weight = 14
    get_next_missing = False

    def on_start(self):
        self.sign_in(_next_of("TL_SPECIALISTS"))

    @task(2)
    def my_work(self):
        self.client.get("/work", name="/work")

    @task(3)
    def get_next_and_submit(self):
        if Specialist.get_next_missing:
            return
        page = self.client.get("/work", name="/work")
        found = Forms(page.text).form(GET_NEXT_PATH)
        data = found[1] if found else {"csrf_token": ""}
        with self.client.post(GET_NEXT_PATH, data=data, name=f"{GET_NEXT_PATH} [POST]",
                              catch_response=True) as response:
            if response.status_code == 404 and "/work/tasks/" not in response.url:
                Specialist.get_next_missing = True
                response.success()
                print(f"load test: {GET_NEXT_PATH} does not exist; specialist loop skipped")
                return
            if "/work/tasks/" not in response.url:
                return  # nothing claimable right now (or capacity full): a normal answer
        self._work_through(response)

    def _work_through(self, response):
        """Start, tick every SOP step, submit: each POST redirects back to the workspace."""
        start = Forms(response.text).form("/start")
        if start:
            response = self.client.post(start[0], data=start[1], name="/work/tasks/[id]/start")
        for _ in range(12):  # a checklist is short; this bounds a page that never changes
            step = next(((act, data) for act, data in Forms(response.text).forms
                         if act.endswith("/steps") and data.get("done") == "y"), None)
            if step is None:
                break
            response = self.client.post(step[0], data=step[1], name="/work/tasks/[id]/steps")
        submit = Forms(response.text).form("/submit")
        if submit:
            self.client.post(submit[0], data=submit[1], name="/work/tasks/[id]/submit")


class Lead(SpreadUser):
    weight = 4

    def on_start(self):
        self.sign_in(_next_of("TL_LEADS"))

    @task(4)
    def board(self):
        self.client.get("/board", name="/board")

    @task(1)
    def board_filtered(self):
        status = random.choice(["queued", "in_progress", "pending_client"])
        self.client.get(f"/board?status={status}", name="/board?status=")

    @task(2)
    def qa_queue(self):
        self.client.get("/qa/", name="/qa/")

    @task(1)
    def escalations(self):
        self.client.get("/escalations", name="/escalations")


def _combined(stats, names: list[str], label: str) -> StatsEntry:
    entry = StatsEntry(stats, label, "")
    for name in names:
        entry.extend(stats.entries[name])
    return entry


@events.quitting.add_listener
def _summary(environment, **_kwargs) -> None:
    """Pages and API against the targets, one line each, for docs/PERFORMANCE.md."""
    stats = environment.stats
    keys = [k for k in stats.entries if not k[0].startswith("/login")]
    groups = {
        "pages": [k for k in keys if not k[0].startswith("/api/")],
        "api": [k for k in keys if k[0].startswith("/api/")],
    }
    total = stats.total
    print("\n== load test summary ==")
    print(f"requests {total.num_requests}, failures {total.num_failures}, "
          f"throughput {total.total_rps:.1f} req/s over {len(HOSTS)} web instance(s)")
    for label, names in groups.items():
        if not names:
            continue
        entry = _combined(stats, names, label)
        p50, p95, p99 = (entry.get_response_time_percentile(q) for q in (0.5, 0.95, 0.99))
        target = PAGE_P95_MS if label == "pages" else API_P95_MS
        verdict = "meets" if p95 < target else "MISSES"
        print(f"{label:5}: {entry.num_requests} requests, {entry.num_failures} failures, "
              f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms "
              f"({verdict} p95 < {target} ms)")
