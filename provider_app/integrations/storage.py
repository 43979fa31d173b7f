"""Raw inbound messages on disk (UPLOAD_DIR/inbound), removed again if their row rolls back.

The message is kept as received so that attachments can be checked and attached when a lead
creates the task days later, and so that nobody has to trust our parsing of it.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from ..extensions import db

_STORAGE_NAME = re.compile(r"[0-9a-f]{32}")
WRITTEN_KEY = "integrations_written_files"


def inbound_path(storage_name: str) -> Path:
    if not _STORAGE_NAME.fullmatch(storage_name or ""):
        raise ValueError("bad storage name")
    return Path(current_app.config["UPLOAD_DIR"]) / "inbound" / storage_name[:2] / (
        storage_name + ".eml")


def store_raw(raw: bytes) -> tuple[str, str]:
    """Write the message; (storage name, sha256). Deleted if the transaction rolls back."""
    storage_name = uuid.uuid4().hex
    path = inbound_path(storage_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    db.session.info.setdefault(WRITTEN_KEY, []).append(path)
    return storage_name, hashlib.sha256(raw).hexdigest()


def read_raw(storage_name: str | None) -> bytes | None:
    if not storage_name:
        return None
    path = inbound_path(storage_name)
    return path.read_bytes() if path.exists() else None


@event.listens_for(Session, "after_commit")
def _keep_written(session: Session) -> None:
    session.info.pop(WRITTEN_KEY, None)


@event.listens_for(Session, "after_soft_rollback")
def _remove_written(session: Session, previous_transaction) -> None:
    if previous_transaction.nested:
        return
    for path in session.info.pop(WRITTEN_KEY, []):
        Path(path).unlink(missing_ok=True)
