"""Helpers for the intake tests: a small world and request shortcuts."""

from __future__ import annotations

import io
from dataclasses import dataclass

from rq import SimpleWorker

from provider_app.demo_catalogue import TASK_TYPES
from provider_app.jobs import get_queue
from provider_app.models import Client, TaskType, User
from provider_app.vocab import Role
from tests.factories import gen_client, gen_contract, gen_task_type, gen_token, gen_user

COI_FIELDS = next(t["fields"] for t in TASK_TYPES if t["code"] == "COI")
ENDT_FIELDS = next(t["fields"] for t in TASK_TYPES if t["code"] == "ENDT_ADMIN")


@dataclass
class World:
    a: Client
    b: Client
    data: TaskType  # the DATA-like type: one required textarea "description"
    coi: TaskType
    endt: TaskType
    user_a: User
    admin_a: User
    user_b: User
    token_a: str
    token_b: str

    def headers(self, token: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token_a}", **extra}


def build_world() -> World:
    a, b = gen_client(), gen_client(tz="America/Chicago")
    data = gen_task_type()
    coi = gen_task_type(fields=COI_FIELDS)
    endt = gen_task_type(fields=ENDT_FIELDS)
    for client in (a, b):
        gen_contract(client, {(data, "normal"): 8.0, (data, "urgent"): 2.0,
                              (coi, "normal"): 4.0, (endt, "normal"): 8.0})
    return World(
        a=a, b=b, data=data, coi=coi, endt=endt,
        user_a=gen_user(Role.CLIENT_USER, a), admin_a=gen_user(Role.CLIENT_ADMIN, a),
        user_b=gen_user(Role.CLIENT_USER, b), token_a=gen_token(a), token_b=gen_token(b),
    )


def csv_file(text: str, name: str = "tasks.csv") -> tuple[io.BytesIO, str]:
    return io.BytesIO(text.encode("utf-8")), name


def run_jobs(queue: str = "low") -> None:
    """Run what is queued on ``queue`` in this process (the test's transaction)."""
    q = get_queue(queue)
    SimpleWorker([q], connection=q.connection).work(burst=True)
