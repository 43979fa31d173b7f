"""Helpers for the integration tests: a world, real SMTP and HTTP servers, e-mail builders."""

from __future__ import annotations

import json
import smtplib
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rq import SimpleWorker

from provider_app.demo_catalogue import TASK_TYPES
from provider_app.extensions import db
from provider_app.integrations import configuration
from provider_app.jobs import get_queue
from provider_app.models import Client, TaskType, User
from provider_app.vocab import Role, StaffTier
from tests.factories import (
    gen_client,
    gen_contract,
    gen_specialist,
    gen_task_type,
    gen_user,
)

COUNTS = {"emails": 0, "webhooks": 0}
COI_FIELDS = next(t["fields"] for t in TASK_TYPES if t["code"] == "COI")
ENDT_FIELDS = next(t["fields"] for t in TASK_TYPES if t["code"] == "ENDT_ADMIN")
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class World:
    a: Client
    b: Client
    coi: TaskType
    data: TaskType
    endt: TaskType  # not in either client's contract
    user_a: User
    admin_a: User
    admin_b: User
    lead: User
    admin: User

    @property
    def address_a(self) -> str:
        return f"{self.a.code.lower()}@intake.localhost"


def build_world() -> World:
    a, b = gen_client(), gen_client(tz="America/Chicago")
    coi = gen_task_type("COI", fields=COI_FIELDS)
    data = gen_task_type()
    endt = gen_task_type(fields=ENDT_FIELDS)
    for client in (a, b):
        gen_contract(client, {(coi, "normal"): 4.0, (coi, "urgent"): 1.0, (data, "normal"): 8.0,
                              (data, "high"): 4.0})
    lead = gen_user(Role.TEAM_LEAD)
    world = World(a=a, b=b, coi=coi, data=data, endt=endt,
                  user_a=gen_user(Role.CLIENT_USER, a, email=f"ops@{a.code.lower()}.test"),
                  admin_a=gen_user(Role.CLIENT_ADMIN, a), admin_b=gen_user(Role.CLIENT_ADMIN, b),
                  lead=lead, admin=gen_user(Role.ADMIN))
    configuration.add_sender(a, "@agency-a.test", lead)
    db.session.flush()
    return world


def add_rule(client: Client, actor: User, name: str, conditions: list[dict],
             actions: list[dict], **kw):
    return configuration.save_rule(client, None, name=name, match_all=kw.pop("match_all", True),
                                   stop=kw.pop("stop", False), enabled=True,
                                   conditions=conditions, actions=actions, actor=actor)


def coi_rule(world: World) -> None:
    """Route certificate requests to COI (the routing rule most clients have)."""
    add_rule(world.a, world.lead, "Certificates",
             [{"subject": "subject", "op": "any_of", "value": "certificate, coi"}],
             [{"type": "set_task_type", "value": "COI"}])


def pod_specialist(client: Client) -> User:
    person = gen_specialist(StaffTier.GENERAL, skills={"coi": 3}, clients=[client])
    person.staff_profile.client_links[0].dedicated = True
    db.session.flush()
    return person


# --- e-mail --------------------------------------------------------------------------------


COI_BODY = """Hello team,

Please issue a certificate for the following.

Named insured: Acme Widgets LLC
Certificate holder name: City of Springfield
Certificate holder address: 1 Main St, Springfield IL
Policy numbers: GL-100200, AU-300400
Lines of coverage: GL, AUTO
Additional insured requested: yes
Reference: AMS-7781

Thanks
"""


def email(to: str, subject: str, body: str, *, sender: str = "broker@agency-a.test",
          message_id: str | None = None, attachments: list[tuple[str, str, bytes]] = (),
          headers: dict[str, str] | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Broker <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="agency-a.test")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


class SmtpServer:
    """The real intake receiver (aiosmtpd) on a free loopback port."""

    def __init__(self, app):
        from provider_app.integrations.smtp_server import make_controller

        self.port = free_port()
        self.controller = make_controller(app, "127.0.0.1", self.port)
        self.controller.start()

    def send(self, message: EmailMessage, to: list[str] | None = None) -> dict:
        """Send over SMTP; returns smtplib's refused-recipient map (raises on refusal)."""
        COUNTS["emails"] += 1
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            return client.send_message(message, to_addrs=to)

    def stop(self) -> None:
        self.controller.stop()


# --- HTTP ----------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """A client's endpoint: records requests, answers with the scripted status codes."""

    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                outer.requests.append(Received(self.path, dict(self.headers), body))
                COUNTS["webhooks"] += 1
                status = outer.script.pop(0) if outer.script else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"receiver is down")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/throughline"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_jobs(queue: str = "default") -> None:
    """Run what is queued in this process (the test's transaction), like a worker would."""
    q = get_queue(queue)
    SimpleWorker([q], connection=q.connection).work(burst=True)
