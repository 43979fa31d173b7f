"""Messages on a task: provider info requests, client answers, notes.

Requesting information pauses the SLA clock (in_progress -> pending_client);
the client's answer resumes it. Views, the API, e-mail intake and jobs all call
these functions, so the rule lives in one place.
"""

from __future__ import annotations

from sqlalchemy import select

from .audit import record
from .db_types import utcnow
from .extensions import db
from .lifecycle import TransitionError, transition
from .models import Message, Task, User
from .vocab import MessageKind, Status


class ConversationError(ValueError):
    """A message that cannot be accepted, phrased for its author."""


def _add(task: Task, kind: MessageKind, body: str, author: User | None, *,
         internal: bool = False) -> Message:
    body = (body or "").strip()
    if not body:
        raise ConversationError("Write a message first.")
    if len(body) > 10_000:
        raise ConversationError("Keep messages under 10,000 characters.")
    message = Message(task_id=task.id, client_id=task.client_id, kind=kind, body=body,
                      author_id=author.id if author else None, internal=internal)
    db.session.add(message)
    db.session.flush()
    record(f"message.{kind.value}", object_type="task", object_id=task.id,
           client_id=task.client_id, actor=author, after={"message_id": message.id})
    return message


def post_message(task: Task, body: str, author: User | None) -> Message:
    """A plain message from either side; never changes the task's state."""
    return _add(task, MessageKind.MESSAGE, body, author)


def add_note(task: Task, body: str, author: User) -> Message:
    """An internal note, never shown to the client."""
    return _add(task, MessageKind.NOTE, body, author, internal=True)


def request_info(task: Task, body: str, author: User) -> Message:
    """Ask the client a question and pause the SLA clock until they answer."""
    if Status(task.status) != Status.IN_PROGRESS:
        raise TransitionError(task, Status.PENDING_CLIENT,
                              "Information can be requested only while the task is in progress.")
    message = _add(task, MessageKind.INFO_REQUEST, body, author)
    transition(task, Status.PENDING_CLIENT, actor=author, reason="information requested")
    return message


def open_info_request(task: Task) -> Message | None:
    return db.session.scalar(
        select(Message)
        .where(Message.task_id == task.id, Message.kind == MessageKind.INFO_REQUEST,
               Message.answered_at.is_(None))
        .order_by(Message.created_at.desc())
        .limit(1)
    )


def answer_info(task: Task, body: str, author: User | None) -> Message:
    """The client's answer: recorded, the request closed, work and the clock resumed."""
    if Status(task.status) != Status.PENDING_CLIENT:
        raise ConversationError("This task is not waiting for information from you.")
    message = _add(task, MessageKind.INFO_RESPONSE, body, author)
    if (request := open_info_request(task)) is not None:
        request.answered_at = utcnow()
    transition(task, Status.IN_PROGRESS, actor=author, reason="client answered")
    return message
