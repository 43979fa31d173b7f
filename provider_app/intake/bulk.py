"""Bulk CSV intake: upload, validate every row, then import the valid rows as one lot.

Two phases, each an RQ job with its progress in a JobProgress row:

1. ``validate_import`` streams the stored file once, checks every row with the same
   field rules as the form and the API, writes the normalised valid rows to a
   side file and the rejected rows (with their messages) to an error CSV. If any
   row is invalid the upload stops at ``needs_decision``: nothing is imported
   until the client chooses to import the valid rows (or fixes the file and
   uploads it again). A clean file goes straight on to phase 2.
2. ``import_valid_rows`` streams the valid rows in batches of 1,000 and inserts
   tasks, their lifecycle audit events and progress in one commit per batch.

Why phase 2 bypasses ``lifecycle.transition`` per row: 100,000 ORM transitions
would be 100,000 flushes. Tasks are inserted already ``queued`` with one
``task.transition`` audit event (received -> queued) each, which is exactly what
``transition`` writes for that move (no SLA side effects, no assignee to clear),
so status history stays derivable from the audit trail. The batch commit makes
the job resumable: a retried job skips the rows already committed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from flask import Response, abort, current_app, send_file
from sqlalchemy import JSON, Table, bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from sla.clock import clock_columns

from ..assignment.batch import request_run
from ..audit import record
from ..db_types import new_public_id, utcnow
from ..extensions import db
from ..jobs import enqueue_after_commit
from ..lifecycle import can_transition
from ..models import AuditEvent, Client, JobProgress, Lot, Task, TaskType, User
from ..models.tasks import priority_order
from ..vocab import SlaState, Status
from .documents import display_name
from .fields import ENVELOPE_SPECS, RowValidator, clean_all, specs_from
from .insert import (
    DUPLICATE_FIELDS,
    DUPLICATE_WINDOW,
    OPEN_STATUS_VALUES,
    duplicate_key,
    with_defaults,
)
from .models import CsvImport
from .schemas import IntakeInvalid, iso
from .service import active_task_types, current_sop_ids, find_task_type

JOB_KIND = "csv_import"
VALIDATE_JOB = "provider_app.intake.bulk.validate_import"
IMPORT_JOB = "provider_app.intake.bulk.import_valid_rows"
JOB_TIMEOUT = 3600
BATCH = 1000
MAX_ERRORS_KEPT = 1000
ENVELOPE_COLUMNS = ("task_type", "priority", "external_ref", "state")
# Columns of our own error CSV, so a corrected error file can be uploaded as it is.
IGNORED_COLUMNS = frozenset({"row", "errors"})
ON_INVALID = ("ask", "import_valid")
TERMINAL = frozenset({"completed", "rejected", "discarded"})


class DuplicateUpload(Exception):
    """This client already uploaded a file with the same content."""

    def __init__(self, previous: CsvImport):
        super().__init__("This file was already uploaded.")
        self.previous = previous


class ImportStateError(ValueError):
    """A decision that no longer applies (already imported, discarded, still running)."""


class FileRejected(ValueError):
    """The file as a whole cannot be read as an intake CSV."""


# --- storage -------------------------------------------------------------------------


def _imports_dir() -> Path:
    path = Path(current_app.config["UPLOAD_DIR"]) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload_path(imp: CsvImport) -> Path:
    return _imports_dir() / f"{imp.storage_name}.csv"


def errors_path(imp: CsvImport) -> Path:
    return _imports_dir() / f"{imp.storage_name}.errors.csv"


def valid_rows_path(imp: CsvImport) -> Path:
    return _imports_dir() / f"{imp.storage_name}.valid.jsonl"


# --- upload and decisions (request side) --------------------------------------------


def start_import(
    client: Client,
    stream: BinaryIO | None,
    filename: str | None,
    *,
    task_type_code: str | None,
    on_invalid: str = "ask",
    actor: User | None,
) -> CsvImport:
    """Store an uploaded CSV and queue its validation; refuses a file uploaded before."""
    errors: dict[str, list[str]] = {}
    task_type = None
    if task_type_code and task_type_code.strip():
        task_type = find_task_type(task_type_code.strip())
        if task_type is None:
            errors["task_type"] = [f"Unknown task type {task_type_code.strip()!r}."]
    if on_invalid not in ON_INVALID:
        errors["on_invalid"] = [f"Use one of: {', '.join(ON_INVALID)}."]
    name = display_name(filename)
    if stream is None or not filename:
        errors["file"] = ["Choose a CSV file to upload."]
    elif not name.lower().endswith((".csv", ".txt")):
        errors["file"] = ["Upload a .csv file (comma-separated, UTF-8)."]
    if errors:
        raise IntakeInvalid(errors)
    storage_name = uuid.uuid4().hex
    path = _imports_dir() / f"{storage_name}.csv"
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as out:
        while chunk := stream.read(64 * 1024):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    file_hash = digest.hexdigest()
    try:
        if size == 0:
            raise IntakeInvalid({"file": ["The file is empty."]})
        previous = _live_upload(client.id, file_hash)
        if previous is not None:
            raise DuplicateUpload(previous)
        job = JobProgress(client_id=client.id, kind=JOB_KIND, status="queued",
                          created_by_id=actor.id if actor else None,
                          result={"file_name": name})
        imp = CsvImport(client_id=client.id, job=job,
                        task_type_id=task_type.id if task_type is not None else None,
                        file_name=name, file_hash=file_hash, storage_name=storage_name,
                        size=size, on_invalid=on_invalid,
                        created_by_id=actor.id if actor else None)
        try:
            with db.session.begin_nested():
                db.session.add(imp)
        except IntegrityError:  # the same file, uploaded at the same moment
            raise DuplicateUpload(_live_upload(client.id, file_hash)) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    db.session.info.setdefault("intake_written_files", []).append(path)
    record("import.upload", object_type="csv_import", object_id=imp.id, client_id=client.id,
           actor=actor, after={"file_name": name, "sha256": file_hash, "size": size,
                               "job_id": job.id})
    enqueue_after_commit(VALIDATE_JOB, imp.id, queue="low", timeout=JOB_TIMEOUT)
    return imp


def _live_upload(client_id: int, file_hash: str) -> CsvImport | None:
    return db.session.scalar(
        select(CsvImport).where(CsvImport.client_id == client_id,
                                CsvImport.file_hash == file_hash,
                                CsvImport.discarded_at.is_(None))
    )


def _claim(job: JobProgress, from_status: str, to_status: str) -> None:
    """Move the job between states atomically, so a double click cannot act twice."""
    moved = db.session.execute(
        update(JobProgress)
        .where(JobProgress.id == job.id, JobProgress.status == from_status)
        .values(status=to_status, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise ImportStateError("This upload is no longer waiting for a decision.")
    db.session.refresh(job)


def accept_valid_rows(imp: CsvImport, *, actor: User | None) -> None:
    """The client's decision: import the valid rows of a file that also has invalid ones."""
    _claim(imp.job, "needs_decision", "queued")
    imp.job.result = {**imp.job.result, "phase": "importing"}
    imp.accepted_at = utcnow()
    imp.accepted_by_id = actor.id if actor else None
    record("import.accept_valid", object_type="csv_import", object_id=imp.id,
           client_id=imp.client_id, actor=actor,
           after={"valid_rows": imp.job.result.get("valid_rows")})
    enqueue_after_commit(IMPORT_JOB, imp.id, queue="low", timeout=JOB_TIMEOUT)


def discard_import(imp: CsvImport, *, actor: User | None) -> None:
    """Drop an upload that is waiting for a decision; its file may then be uploaded again."""
    _claim(imp.job, "needs_decision", "discarded")
    _release(imp)
    record("import.discard", object_type="csv_import", object_id=imp.id,
           client_id=imp.client_id, actor=actor)


def _release(imp: CsvImport) -> None:
    imp.discarded_at = utcnow()
    upload_path(imp).unlink(missing_ok=True)
    valid_rows_path(imp).unlink(missing_ok=True)


# --- phase 1: validation (job) -------------------------------------------------------


class _Catalogue:
    """Active task types and their row validators, loaded once per job."""

    def __init__(self) -> None:
        self.types = {tt.code: tt for tt in active_task_types()}
        self.validators = {code: RowValidator(specs_from(tt.intake_schema))
                           for code, tt in self.types.items()}
        self.all_field_names = frozenset().union(*(v.names for v in self.validators.values()))
        self._foreign: dict[str, tuple[str, ...]] = {}

    def validator_for(self, task_type: TaskType) -> RowValidator:
        if task_type.code not in self.validators:
            self.validators[task_type.code] = RowValidator(specs_from(task_type.intake_schema))
        return self.validators[task_type.code]

    def foreign_fields(self, task_type: TaskType) -> tuple[str, ...]:
        """Other types' field names: a row of this type must leave them empty (computed
        once per type, not per row)."""
        found = self._foreign.get(task_type.code)
        if found is None:
            names = self.validator_for(task_type).names
            found = self._foreign[task_type.code] = tuple(sorted(self.all_field_names - names))
        return found


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _open_rows(path: Path) -> Iterator[list[str]]:
    handle = io.TextIOWrapper(path.open("rb"), encoding="utf-8-sig", newline="")
    try:
        yield from csv.reader(handle)
    finally:
        handle.close()


def _check_header(header: list[str], imp: CsvImport, catalogue: _Catalogue) -> list[str]:
    columns = [c.strip().lower() for c in header]
    if not any(columns):
        raise FileRejected("The first row must name the columns (e.g. task_type, priority, …).")
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise FileRejected(f"Column names appear twice: {', '.join(dupes)}.")
    fixed = imp.task_type
    if "task_type" not in columns and fixed is None:
        raise FileRejected("Add a task_type column, or choose the task type for every row.")
    if "task_type" not in columns:
        validator = catalogue.validator_for(fixed)
        known = set(ENVELOPE_COLUMNS) | IGNORED_COLUMNS | validator.names
        missing = [s.name for s in validator.specs if s.required and s.name not in columns]
        if missing:
            raise FileRejected(f"Missing column(s) for {fixed.code}: {', '.join(missing)}.")
    else:
        known = set(ENVELOPE_COLUMNS) | IGNORED_COLUMNS | catalogue.all_field_names
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise FileRejected(f"Unknown column(s): {', '.join(unknown)}. Columns are task_type, "
                           "priority, external_ref, state and the task type's field names.")
    return columns


def _validate_row(cells: dict[str, str], imp: CsvImport, catalogue: _Catalogue,
                  has_type_column: bool) -> tuple[list | None, list[tuple[str, str]]]:
    """(normalised row, []) or (None, [(field path, message), ...])."""
    errors: list[tuple[str, str]] = []
    code = (cells.get("task_type") or "").strip().upper()
    if code:
        task_type = catalogue.types.get(code)
        if task_type is None:
            errors.append(("task_type", f"Unknown task type {code!r}."))
    else:
        task_type = imp.task_type
        if task_type is None:
            errors.append(("task_type", "This field is required."))
    envelope, envelope_errors = clean_all(ENVELOPE_SPECS, cells, text=True)
    errors.extend(envelope_errors.items())
    if task_type is None:
        return None, errors
    validator = catalogue.validator_for(task_type)
    values, field_errors = validator(cells)
    errors.extend((f"fields.{name}", message) for name, message in field_errors.items())
    if has_type_column:
        errors.extend(
            (f"fields.{name}", f"Not a field of task type {task_type.code}; leave it empty.")
            for name in catalogue.foreign_fields(task_type)
            if (cells.get(name) or "").strip()
        )
    if errors:
        return None, errors
    return [task_type.id, envelope["priority"], envelope.get("external_ref"),
            envelope.get("state"), values], []


def _save_progress(job: JobProgress, **result: Any) -> None:
    job.result = {**(job.result or {}), **result}
    db.session.commit()


def validate_import(import_id: int) -> str:
    """Job, phase 1: check every row; then import, stop for a decision, or reject.

    Also what an RQ retry runs: validation starts again from the top; a crash in
    an automatic import resumes that import.
    """
    imp = db.session.get(CsvImport, import_id)
    job = imp.job
    phase = job.result.get("phase")
    if job.status in TERMINAL or job.status == "needs_decision":
        return job.status
    if phase == "importing":
        return _import(imp, job)
    try:
        outcome = _validate(imp, job)
    except FileRejected as exc:
        return _reject(imp, job, str(exc))
    except Exception as exc:
        _fail(job, exc)
        raise
    if outcome == "import":
        return _import(imp, job)
    return job.status


def _validate(imp: CsvImport, job: JobProgress) -> str:
    job.status = "validating"
    job.error = None
    job.total = max(_count_lines(upload_path(imp)) - 1, 0)
    job.done = 0
    _save_progress(job, phase="validating")
    catalogue = _Catalogue()
    rows = _open_rows(upload_path(imp))
    valid = invalid = error_count = 0
    kept: list[dict] = []
    line = 1
    try:
        header = next(rows, None)
        if header is None:
            raise FileRejected("The file has no rows.")
        columns = _check_header(header, imp, catalogue)
        has_type_column = "task_type" in columns
        with (errors_path(imp).open("w", newline="", encoding="utf-8") as err_file,
              valid_rows_path(imp).open("w", encoding="utf-8") as valid_file):
            err_writer = csv.writer(err_file)
            err_writer.writerow(["row", "errors", *header])
            for line, cells in enumerate(rows, start=2):
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(columns):
                    problems = [("_row", f"This row has {len(cells)} cells; the header has "
                                         f"{len(columns)}.")]
                    normalised = None
                else:
                    normalised, problems = _validate_row(
                        dict(zip(columns, cells, strict=True)), imp, catalogue, has_type_column
                    )
                if normalised is not None:
                    valid += 1
                    valid_file.write(json.dumps([line, *normalised]) + "\n")
                else:
                    invalid += 1
                    error_count += len(problems)
                    err_writer.writerow([line, "; ".join(f"{f}: {m}" for f, m in problems),
                                         *cells])
                    for field, message in problems:
                        if len(kept) < MAX_ERRORS_KEPT:
                            kept.append({"row": line, "field": field, "message": message})
                if (valid + invalid) % BATCH == 0:
                    job.done = valid + invalid
                    job.total = max(job.total, job.done)
                    _save_progress(job)
    except UnicodeDecodeError:
        raise FileRejected("The file is not UTF-8 text; save it as \"CSV UTF-8\".") from None
    except csv.Error as exc:
        raise FileRejected(f"The file is not valid CSV near row {line}: {exc}.") from None
    finally:
        rows.close()
    if valid + invalid == 0:
        raise FileRejected("The file has a header but no rows.")
    job.total = job.done = valid + invalid
    summary = {"valid_rows": valid, "invalid_rows": invalid, "error_count": error_count,
               "errors": kept, "errors_truncated": error_count > len(kept)}
    if valid == 0:
        job.result = {**job.result, **summary}
        raise FileRejected("No row can be imported; see the errors, fix the file and upload "
                           "it again.")
    if invalid and imp.on_invalid == "ask":
        job.status = "needs_decision"
        _save_progress(job, **summary, phase="needs_decision")
        return "ask"
    imp.accepted_at = imp.accepted_at or imp.created_at
    _save_progress(job, **summary, phase="importing")
    return "import"


def _reject(imp: CsvImport, job: JobProgress, message: str) -> str:
    job.status = "rejected"
    job.error = message
    _release(imp)
    record("import.reject", object_type="csv_import", object_id=imp.id,
           client_id=imp.client_id, reason=message[:500])
    _save_progress(job, phase="rejected", message=message)
    return job.status


def _fail(job: JobProgress, exc: Exception) -> None:
    """Record a crash for the client to see; RQ retries the job, which resumes."""
    db.session.rollback()
    job = db.session.get(JobProgress, job.id)
    job.error = f"{type(exc).__name__}: {exc}"[:2000]
    job.status = "failed"
    _save_progress(job)


# --- phase 2: import (job) -----------------------------------------------------------


def import_valid_rows(import_id: int) -> str:
    """Job, phase 2 after the client's decision: import the valid rows."""
    imp = db.session.get(CsvImport, import_id)
    if imp.job.status in TERMINAL or imp.job.result.get("phase") != "importing":
        return imp.job.status
    return _import(imp, imp.job)


def _import(imp: CsvImport, job: JobProgress) -> str:
    try:
        return _import_rows(imp, job)
    except Exception as exc:
        _fail(job, exc)
        raise


class _DuplicateIndex:
    """Open tasks of the client received within the window, by duplicate key.

    Loaded once per job with the filter of ``insert.duplicate_query``, then
    kept up to date as rows are inserted, so rows repeated inside the file are
    flagged too.
    """

    def __init__(self, client_id: int, type_ids: list[int], now: datetime):
        self.first: dict[tuple, int] = {}
        stmt = (
            select(Task.id, Task.task_type_id, Task.external_ref,
                   *(Task.fields[name].as_string() for name in DUPLICATE_FIELDS))
            .where(Task.client_id == client_id, Task.task_type_id.in_(type_ids),
                   Task.status.in_(OPEN_STATUS_VALUES),
                   Task.received_at >= now - DUPLICATE_WINDOW)
            .order_by(Task.received_at, Task.id)
            .execution_options(yield_per=5000)
        )
        for task_id, type_id, ref, *values in db.session.execute(stmt):
            fields = dict(zip(DUPLICATE_FIELDS, values, strict=True))
            self.add(type_id, ref, fields, task_id)

    @staticmethod
    def key(type_id: int, ref: str | None, fields: dict) -> tuple | None:
        key = duplicate_key(ref, fields)
        if key is None:
            return None
        # Field values compare case-insensitively, as insert.duplicate_query does.
        return (type_id, *sorted((k, v if k == "external_ref" else v.lower())
                                 for k, v in key.items()))

    def lookup(self, type_id: int, ref: str | None, fields: dict) -> int | None:
        key = self.key(type_id, ref, fields)
        return self.first.get(key) if key else None

    def add(self, type_id: int, ref: str | None, fields: dict, task_id: int) -> None:
        key = self.key(type_id, ref, fields)
        if key is not None:
            self.first.setdefault(key, task_id)


class _SlaClock:
    """SLA columns per (task type, priority), from ``sla.clock.clock_columns``.

    Every row of a lot is received at the same instant, so the due time depends
    only on the type and priority; each pair is computed once.
    """

    def __init__(self, client_id: int, received_at: datetime):
        self.client_id = client_id
        self.received_at = received_at
        self.cache: dict[tuple[int, str], dict[str, Any]] = {}

    def columns(self, task_type_id: int, priority: str) -> dict[str, Any]:
        key = (task_type_id, priority)
        if key not in self.cache:
            columns = clock_columns(self.client_id, task_type_id, priority, self.received_at)
            self.cache[key] = {name: getattr(value, "value", value)  # enum members as text
                               for name, value in columns.items()}
        return self.cache[key]


def _read_valid_rows(path: Path, skip: int) -> Iterator[list]:
    with path.open(encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if index >= skip:
                yield json.loads(line)


def _batches(rows: Iterator[list], size: int) -> Iterator[list[list]]:
    batch: list[list] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _import_rows(imp: CsvImport, job: JobProgress) -> str:
    assert can_transition(Status.RECEIVED, Status.QUEUED)  # what the audit rows record
    received_at = imp.accepted_at or utcnow()
    if imp.lot_id is None:
        lot = Lot(client_id=imp.client_id, task_type_id=imp.task_type_id, source="csv",
                  file_name=imp.file_name, file_hash=imp.file_hash,
                  created_by_id=imp.created_by_id, created_at=received_at)
        db.session.add(lot)
        db.session.flush()
        imp.lot_id = lot.id
    lot = db.session.get(Lot, imp.lot_id)
    job.status = "importing"
    job.error = None
    cursor = int(job.result.get("cursor", 0))
    flagged = int(job.result.get("duplicates_flagged", 0))
    job.total = int(job.result.get("valid_rows", 0))
    job.done = cursor
    _save_progress(job, phase="importing", lot=lot.public_id)
    type_ids = list(db.session.scalars(select(TaskType.id).where(TaskType.active.is_(True))))
    sop_ids = current_sop_ids(type_ids)
    duplicates = _DuplicateIndex(imp.client_id, type_ids, received_at)
    clock = _SlaClock(imp.client_id, received_at)
    actor_id = imp.accepted_by_id or imp.created_by_id
    batch_context = _BatchContext(imp.client_id, lot.id, lot.public_id, imp.created_by_id,
                                  received_at, actor_id, sop_ids, duplicates, clock)
    for batch in _batches(_read_valid_rows(valid_rows_path(imp), cursor), BATCH):
        flagged += _insert_batch(batch, batch_context)
        cursor += len(batch)
        job.done = cursor
        _save_progress(job, cursor=cursor, imported=cursor, duplicates_flagged=flagged)
    lot.row_count = db.session.scalar(
        select(func.count()).select_from(Task).where(Task.lot_id == lot.id)
    )
    job.status = "completed"
    record("lot.create", object_type="lot", object_id=lot.id, client_id=imp.client_id,
           actor=db.session.get(User, actor_id) if actor_id else None,
           after={"tasks": lot.row_count, "duplicates_flagged": flagged,
                  "csv_import_id": imp.id})
    valid_rows_path(imp).unlink(missing_ok=True)
    request_run()
    _save_progress(job, phase="completed")
    return job.status


@dataclass(frozen=True)
class _BatchContext:
    """What every batch of one import shares, as plain values: ORM objects expire at
    every batch commit and would be reloaded."""

    client_id: int
    lot_id: int
    lot_public_id: str
    created_by_id: int | None
    received_at: datetime
    actor_id: int | None
    sop_ids: dict[int, int]
    duplicates: _DuplicateIndex
    clock: _SlaClock


def _insert_batch(batch: list[list], ctx: _BatchContext) -> int:
    """Insert one batch of tasks (queued) and their audit events; returns rows flagged.

    A row repeating an earlier row of the same batch only learns that row's id from
    the insert, so it is flagged with one UPDATE right after.
    """
    received_at = ctx.received_at
    params, first_in_batch, repeats = [], {}, []
    for index, (_line, type_id, priority, ref, state, fields) in enumerate(batch):
        duplicate_of = ctx.duplicates.lookup(type_id, ref, fields)
        key = ctx.duplicates.key(type_id, ref, fields)
        if duplicate_of is None and key is not None:
            if key in first_in_batch:
                repeats.append((index, first_in_batch[key]))
            else:
                first_in_batch[key] = index
        params.append({
            "public_id": new_public_id(), "client_id": ctx.client_id,
            "task_type_id": type_id, "priority": priority,
            "priority_order": priority_order(priority), "external_ref": ref,
            "state": state, "fields": fields, "status": Status.QUEUED.value,
            "lot_id": ctx.lot_id, "sop_id": ctx.sop_ids.get(type_id),
            "created_by_id": ctx.created_by_id, "source": "csv",
            "received_at": received_at, "updated_at": received_at,
            "duplicate_of_id": duplicate_of, "sla_state": SlaState.ON_TRACK.value,
            "version": 1, **ctx.clock.columns(type_id, priority),
        })
    ids = _insert_rows(Task.__table__, params, returning_ids=True)
    if repeats:
        for index, first in repeats:
            params[index]["duplicate_of_id"] = ids[first]
        table = Task.__table__
        db.session.execute(
            update(table).where(table.c.id == bindparam("task_id"))
            .values(duplicate_of_id=bindparam("first_id")),
            [{"task_id": ids[index], "first_id": ids[first]} for index, first in repeats],
        )
    reason = f"bulk import, lot {ctx.lot_public_id}"
    audit_rows, flagged = [], 0
    for task_id, row, param in zip(ids, batch, params, strict=True):
        ctx.duplicates.add(row[1], row[3], row[5], task_id)
        audit_rows.append(_audit(ctx.client_id, task_id, ctx.actor_id, received_at,
                                 "task.transition", reason, from_status=Status.RECEIVED.value,
                                 to_status=Status.QUEUED.value))
        if param["duplicate_of_id"] is not None:
            flagged += 1
            audit_rows.append(_audit(
                ctx.client_id, task_id, ctx.actor_id, received_at, "task.duplicate_flagged",
                "matches an open task received recently",
                after={"duplicate_of_id": param["duplicate_of_id"]}))
    _insert_rows(AuditEvent.__table__, audit_rows, returning_ids=False)
    return flagged


def _json_positions(table: Table, columns: list[str]) -> list[int]:
    """Where the JSON columns are in a COPY row: only those need converting (dumps); the
    other values are plain text, numbers, datetimes or None, which COPY takes as they are.
    Converting per column instead of testing every value saved a fifth of an import."""
    json_columns = {c.key for c in table.columns if isinstance(c.type, JSON)}
    return [i for i, name in enumerate(columns) if name in json_columns]


def _insert_rows(table: Table, rows: list[dict[str, Any]], *, returning_ids: bool) -> list[int]:
    """Insert many rows in the session's transaction; the new ids in row order if asked.

    On PostgreSQL this is COPY (ids drawn from the table's sequence first), several
    times faster than a multi-row INSERT whose parameters the driver must parse;
    elsewhere an executemany INSERT.
    """
    rows = with_defaults(table, rows)
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        stmt = insert(table)
        if returning_ids:
            stmt = stmt.returning(table.c.id, sort_by_parameter_order=True)
            return list(connection.execute(stmt, rows).scalars())
        connection.execute(stmt, rows)
        return []
    ids: list[int] = []
    columns = list(rows[0])
    if returning_ids:
        ids = list(connection.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                 "FROM generate_series(1, :n)"), {"table": table.name, "n": len(rows)}
        ).scalars())
        columns = ["id", *columns]
    as_json = _json_positions(table, columns)
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(
        f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"  # noqa: S608 - model names
    ) as copy:
        for index, row in enumerate(rows):
            values = [ids[index], *row.values()] if returning_ids else list(row.values())
            for i in as_json:
                if values[i] is not None:
                    values[i] = json.dumps(values[i])
            copy.write_row(values)
    return ids


def _audit(client_id: int, task_id: int, actor_id: int | None, at: datetime, action: str,
           reason: str, *, from_status: str | None = None, to_status: str | None = None,
           after: dict | None = None) -> dict[str, Any]:
    return {"at": at, "actor_id": actor_id, "client_id": client_id, "object_type": "task",
            "object_id": task_id, "action": action, "from_status": from_status,
            "to_status": to_status, "reason": reason, "before": None, "after": after,
            "ip": None}


# --- reading a job for the API and the portal ---------------------------------------


def job_view(job: JobProgress, imp: CsvImport | None) -> dict[str, Any]:
    """What the API (JobSchema) and the portal show about one job."""
    result = job.result or {}
    view = {
        "id": job.id, "kind": job.kind, "status": job.status, "total": job.total,
        "done": job.done, "message": result.get("message") or job.error,
        "created_at": iso(job.created_at), "updated_at": iso(job.updated_at),
    }
    if imp is not None:
        view.update({
            "file_name": imp.file_name,
            "valid_rows": result.get("valid_rows"), "invalid_rows": result.get("invalid_rows"),
            "imported": result.get("imported", 0),
            "duplicates_flagged": result.get("duplicates_flagged", 0),
            "lot": result.get("lot"), "errors": result.get("errors", []),
            "error_count": result.get("error_count", 0),
            "errors_truncated": bool(result.get("errors_truncated")),
            "has_error_file": bool(result.get("invalid_rows")),
        })
    return view


def error_csv_response(imp: CsvImport | None) -> Response:
    """The rejected rows with their messages, as a CSV download (404 when there are none)."""
    path = errors_path(imp) if imp is not None else None
    if path is None or not path.exists() or not (imp.job.result or {}).get("invalid_rows"):
        abort(404)
    stem = imp.file_name.rsplit(".", 1)[0] or "upload"
    return send_file(path, mimetype="text/csv", as_attachment=True,
                     download_name=f"{stem}-errors.csv", max_age=0)
