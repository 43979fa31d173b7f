"""Policies on file per client: the list certificate requests are checked against.

Clients keep policies in their agency management system; they (or the provider) export a
CSV of ``policy_number[,insured_name][,expires_on]`` and import it here, from the provider
page or ``flask --app wsgi import-policies --client CODE FILE``. An import adds new numbers
and updates known ones; ``replace`` also removes numbers the file no longer lists.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import delete, func, select

from ..audit import record
from ..extensions import db
from ..intake.fields import POLICY_NUMBER
from ..models import Client, User
from .models import PolicyOnFile

MAX_ROWS = 100_000


@dataclass
class PolicyImport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    errors: list[str] = field(default_factory=list)


def import_policies(client: Client, text: str, *, replace: bool = False,
                    actor: User | None = None) -> PolicyImport:
    """Read the CSV text; nothing is written when any row is invalid (errors by row)."""
    result = PolicyImport()
    rows: dict[str, tuple[str, date | None]] = {}
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    if "policy_number" not in columns:
        result.errors.append("The first row must name the columns; policy_number is required "
                             "(insured_name and expires_on are optional).")
        return result
    reader.fieldnames = columns
    for line, row in enumerate(reader, start=2):
        if line > MAX_ROWS + 1:
            result.errors.append(f"At most {MAX_ROWS:,} rows per file.")
            break
        number = (row.get("policy_number") or "").strip().upper()
        if not number and not any((v or "").strip() for v in row.values()):
            continue
        if not POLICY_NUMBER.fullmatch(number):
            result.errors.append(f"Row {line}: {number or '(empty)'} is not a policy number "
                                 "(5 to 30 letters, digits, '-' or '/').")
            continue
        expires = None
        if (raw_date := (row.get("expires_on") or "").strip()):
            try:
                expires = date.fromisoformat(raw_date)
            except ValueError:
                result.errors.append(f"Row {line}: expires_on must be YYYY-MM-DD.")
                continue
        rows[number] = ((row.get("insured_name") or "").strip()[:200], expires)
    if result.errors:
        return result
    known = {p.policy_number: p for p in db.session.scalars(
        select(PolicyOnFile).where(PolicyOnFile.client_id == client.id))}
    for number, (insured, expires) in rows.items():
        policy = known.get(number)
        if policy is None:
            db.session.add(PolicyOnFile(client_id=client.id, policy_number=number,
                                        insured_name=insured, expires_on=expires))
            result.added += 1
        elif (policy.insured_name, policy.expires_on) != (insured, expires):
            policy.insured_name, policy.expires_on = insured, expires
            result.updated += 1
    if replace:
        gone = [n for n in known if n not in rows]
        if gone:
            db.session.execute(delete(PolicyOnFile).where(
                PolicyOnFile.client_id == client.id, PolicyOnFile.policy_number.in_(gone)))
        result.removed = len(gone)
    db.session.flush()
    record("policies.import", object_type="client", object_id=client.id, client_id=client.id,
           actor=actor, after={"added": result.added, "updated": result.updated,
                               "removed": result.removed})
    return result


def policy_count(client_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(PolicyOnFile)
                             .where(PolicyOnFile.client_id == client_id))
