"""What a journey needs before it starts, made inside the live stack by the app's own services.

Each journey sets up its own data, so it passes alone (``-k``) as well as in the full
run. The functions run in a process of their own with the live stack's environment
(``LiveStack.setup(name, **arguments)``: ``python -m tests.browser.stack_setup NAME JSON``)
and print one JSON object: the app is slow to import and the test process's extensions
stay untouched. Everything goes through the services the UI and the API use (intake,
assignment, workspace), so the audit trail and the QA routing are the real ones; only
the journey specialist's staff profile is written directly, as an administrator's
staff page would.
"""

from __future__ import annotations

import io
import json
import sys
from datetime import date, time, timedelta
from time import monotonic, sleep
from typing import Any

from sqlalchemy import func, select

from provider_app import create_app
from provider_app.demo import DEMO_PASSWORD, demo_totp_secret
from provider_app.extensions import db
from tests.browser.files import data_entry_csv, small_pdf

# A person no demo data knows: her history is empty, so the QA rule "the specialist's
# first N tasks of a type" sends every task she submits to review (qa/policy.py).
JOURNEY_SPECIALIST = "specialist.journey@throughline.test"
JOURNEY_LEAD = "lead@throughline.test"
UNLICENSED_STATE = "AK"  # demo staff hold licences for NY NJ IL CA TX FL only


def journey_specialist(client: str = "NORTHSTAR", available: bool | None = None
                       ) -> dict[str, Any]:
    """A general-tier specialist serving only ``client``, with every BPO skill.

    She is made away at first, so automatic assignment (run after every intake) hands her
    nothing; ``available=True`` makes her available by writing her profile directly,
    because the availability service would also start an assignment run that could fill
    her capacity before she presses "Get next". Serving one client, whatever she claims,
    that client's user answers her question. Idempotent.
    """
    from provider_app import mfa
    from provider_app.accounts import create_user
    from provider_app.db_types import utcnow
    from provider_app.models import (
        Client,
        StaffClient,
        StaffProfile,
        StaffSkill,
        TaskType,
        TaskTypeSkill,
        User,
    )
    from provider_app.vocab import Availability, Role, StaffTier, Tier

    user = db.session.scalar(select(User).where(User.email == JOURNEY_SPECIALIST))
    if user is None:
        user = create_user(JOURNEY_SPECIALIST, [Role.SPECIALIST], password=DEMO_PASSWORD,
                           name="Jordan Journey")
        user.mfa_secret = mfa.encrypt_secret(demo_totp_secret(user.email))
        user.mfa_enabled_at = utcnow()
    profile = db.session.get(StaffProfile, user.id)
    if profile is None:
        skills = db.session.scalars(
            select(TaskTypeSkill.skill).join(TaskType, TaskType.id == TaskTypeSkill.task_type_id)
            .where(TaskType.tier == Tier.BPO).distinct()
        ).all()
        served = db.session.scalar(select(Client).where(Client.code == client))
        profile = StaffProfile(
            user_id=user.id, tier=StaffTier.GENERAL, capacity=10, timezone="UTC",
            availability=Availability.AWAY,
            shift_start=time(0, 0), shift_end=time(23, 59), shift_days=list(range(7)),
        )
        profile.skills = [StaffSkill(skill=skill, level=5) for skill in skills]
        profile.client_links = [StaffClient(client_id=served.id, dedicated=False)]
        db.session.add(profile)
    if available is not None:
        profile.availability = Availability.AVAILABLE if available else Availability.AWAY
    db.session.commit()
    return {"email": user.email, "name": user.name,
            "totp_key": demo_totp_secret(user.email), "id": user.id}


def _new_task(client_code: str, body: dict[str, Any]):
    from provider_app.intake import service
    from provider_app.intake.schemas import load_task
    from provider_app.models import Client

    client = db.session.scalar(select(Client).where(Client.code == client_code))
    return service.create_task(client, load_task(body, service.find_task_type), actor=None,
                               source="api")


def unassignable_kpo_task(client: str, ref: str) -> dict[str, Any]:
    """A coverage-changing endorsement (KPO, P&C licence) in a state no demo staff is
    licensed for: automatic assignment leaves it queued, so a lead can try to assign it."""
    task = _new_task(client, {
        "task_type": "ENDT_COV", "priority": "normal", "external_ref": ref,
        "state": UNLICENSED_STATE,
        "fields": {"policy_number": "PL-480133", "insured_name": "Aurora Fisheries LLC",
                   "effective_date": (date.today() + timedelta(days=7)).isoformat(),
                   "coverage_change": "Raise the hull limit for the new vessel."},
    })
    db.session.commit()
    return {"public_id": task.public_id, "ref": ref}


def task_in_qa(client: str, ref: str) -> dict[str, Any]:
    """A COI the journey specialist has worked and submitted, now waiting in the QA queue.

    A lead assigns it (with an override: she is away), she works every SOP step, attaches
    the certificate and submits through the workspace service; QA routing then sends it
    to review by rule (her first tasks of the type, and the override), not by chance.
    """
    from provider_app.assignment import actions
    from provider_app.assignment import workspace as work
    from provider_app.integrations.packages import attach_output
    from provider_app.models import User

    person = journey_specialist(client)
    specialist = db.session.get(User, person["id"])
    lead = db.session.scalar(select(User).where(User.email == JOURNEY_LEAD))
    task = _new_task(client, {
        "task_type": "COI", "priority": "high", "external_ref": ref, "state": "NY",
        "fields": {"insured_name": "Harbor Lights Bakery Inc.",
                   "holder_name": "Hudson Property Management",
                   "holder_address": "12 Pier Road, Albany NY 12207",
                   "policy_numbers": "GL-220981, AUTO-550172", "lines": ["GL", "AUTO"]},
    })
    actions.assign(task, specialist.id, lead, override=True,
                   reason="journey set-up: the specialist is away")
    work.start_work(task, specialist, version=None)
    for step in work.sop_steps(task):
        work.set_step(task, step.id, True, specialist, version=None)
    attach_output(task, io.BytesIO(small_pdf(f"ACORD 25 certificate {ref}")), f"{ref}.pdf",
                  "application/pdf", actor=specialist)
    status = work.submit(task, specialist, version=None)
    db.session.commit()
    return {"public_id": task.public_id, "ref": ref, "status": status.value,
            "qa_reason": task.qa_reason}


def ensure_backlog(client: str, minimum: int, ref_prefix: str) -> dict[str, Any]:
    """At least ``minimum`` of ``client``'s tasks queued and unassigned: more work than the
    team's free capacity, as after a bulk upload, so a lead has work to hand out.

    In the full run the client's journey has uploaded 200 tasks already and nothing is
    made; alone, the same kind of upload goes through the CSV import and this waits
    for the worker to import it (automatic assignment then takes what fits).
    """
    from provider_app.intake import bulk
    from provider_app.models import Client, JobProgress, Task
    from provider_app.vocab import Status

    served = db.session.scalar(select(Client).where(Client.code == client))

    def queued() -> int:
        return db.session.scalar(select(func.count()).select_from(Task).where(
            Task.client_id == served.id, Task.status == Status.QUEUED,
            Task.assignee_id.is_(None)))

    before = queued()
    if before >= minimum:
        return {"queued": before, "uploaded": 0}
    imp = bulk.start_import(served, io.BytesIO(data_entry_csv(200, ref_prefix)),
                            f"{ref_prefix}.csv", task_type_code=None, actor=None)
    job_id = imp.job_id
    db.session.commit()
    deadline = monotonic() + 180
    while monotonic() < deadline:
        db.session.rollback()  # a fresh read of the worker's progress
        if db.session.get(JobProgress, job_id).status == "completed":
            return {"queued": queued(), "uploaded": 200}
        sleep(0.5)
    raise TimeoutError(f"the backlog upload {job_id} did not complete in 180 s")


SETUPS = {f.__name__: f for f in (journey_specialist, unassignable_kpo_task, task_in_qa,
                                  ensure_backlog)}


def main(argv: list[str]) -> None:
    name, arguments = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    app = create_app()
    with app.app_context():
        result = SETUPS[name](**arguments)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
