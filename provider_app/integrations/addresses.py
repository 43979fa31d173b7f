"""The intake address scheme and the thread tokens that route replies.

* ``<code>@<INTAKE_DOMAIN>``: a client's intake address (``northstar@intake.localhost``);
* ``<code>+<task public id>@<INTAKE_DOMAIN>``: replies about one task;
* ``<code>+q-<request public id>@…``: replies to our question about a request not yet a task;
* ``[TL-<first 10 of the task id>]`` / ``[TL-Q-<first 10 of the request id>]`` in a subject:
  the same, for mail clients that drop plus-addressing.

Other areas that e-mail a client about a task put ``reply_address(task)`` in Reply-To and
``task_token(task)`` in the subject, so the answer comes back to the right thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import current_app

from ..models import Client, Task

TOKEN_LENGTH = 10
_TOKEN = re.compile(r"\[TL-(Q-)?([0-9a-f]{6,32})\]", re.IGNORECASE)
_PLUS_TASK = re.compile(r"[0-9a-f]{32}")
_PLUS_REQUEST = re.compile(r"q-([0-9a-f]{32})")


@dataclass(frozen=True)
class Recipient:
    """An intake address taken apart: whose it is and which thread it names, if any."""

    code: str
    task_public_id: str | None = None
    request_public_id: str | None = None


def domain() -> str:
    return current_app.config["INTAKE_DOMAIN"]


def intake_address(client: Client) -> str:
    return f"{client.code.lower()}@{domain()}"


def reply_address(task: Task) -> str:
    return f"{task.client.code.lower()}+{task.public_id}@{domain()}"


def request_reply_address(client: Client, request_public_id: str) -> str:
    return f"{client.code.lower()}+q-{request_public_id}@{domain()}"


def task_token(task: Task) -> str:
    return f"[TL-{task.public_id[:TOKEN_LENGTH]}]"


def request_token(request_public_id: str) -> str:
    return f"[TL-Q-{request_public_id[:TOKEN_LENGTH]}]"


def parse_recipient(address: str) -> Recipient | None:
    """The parts of one of our intake addresses, or None for any other address."""
    local, _, host = address.strip().strip("<>").lower().rpartition("@")
    if not local or host != domain():
        return None
    code, _, tag = local.partition("+")
    if not code:
        return None
    if _PLUS_TASK.fullmatch(tag):
        return Recipient(code, task_public_id=tag)
    if match := _PLUS_REQUEST.fullmatch(tag):
        return Recipient(code, request_public_id=match.group(1))
    return Recipient(code)


def subject_tokens(subject: str) -> tuple[str | None, str | None]:
    """(task id prefix, request id prefix) named by a ``[TL-…]`` token in the subject."""
    for match in _TOKEN.finditer(subject or ""):
        prefix = match.group(2).lower()
        return (None, prefix) if match.group(1) else (prefix, None)
    return None, None
