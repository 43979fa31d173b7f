"""``staff_profiles.held_weight`` follows every way a task is held, released or re-weighed.

The counter is kept by database triggers (``provider_app/models/held_weight.py``); after each
kind of change these tests compare it with the sum over the person's tasks (``drift``) and with
the figure expected by hand, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from provider_app.assignment import actions, claim_next
from provider_app.assignment.batch import run_batch
from provider_app.assignment.eligibility import load_person
from provider_app.extensions import db as _db
from provider_app.lifecycle import transition
from provider_app.models import StaffProfile, Task, TaskType, held_weight
from provider_app.vocab import Role, Status
from tests.factories import gen_client, gen_specialist, gen_task, gen_task_type, gen_user


def _counter(user) -> int:
    _db.session.flush()
    return _db.session.scalar(select(StaffProfile.held_weight)
                              .where(StaffProfile.user_id == user.id))


def _no_drift() -> None:
    _db.session.flush()
    assert held_weight.drift(_db.session.connection()) == []


def test_lifecycle_moves_the_counter(db):
    client, light, heavy = gen_client(), gen_task_type(weight=1), gen_task_type(weight=3)
    person = gen_specialist(capacity=20)
    lead = gen_user(Role.TEAM_LEAD)
    assert _counter(person) == 0

    a = gen_task(client, light, status=Status.IN_PROGRESS, assignee=person)
    b = gen_task(client, heavy, status=Status.ASSIGNED, assignee=person)
    assert _counter(person) == 4
    transition(a, Status.PENDING_CLIENT)  # still held: no change
    assert _counter(person) == 4
    transition(a, Status.IN_PROGRESS)
    transition(a, Status.SUBMITTED)  # handed in: released
    assert _counter(person) == 3
    actions.unassign(b, lead, reason="rebalancing")
    assert _counter(person) == 0
    _no_drift()


def test_assignment_paths_and_changing_hands(db):
    client, tt = gen_client(), gen_task_type(weight=2)
    first, second = gen_specialist(capacity=20), gen_specialist(capacity=20)
    lead = gen_user(Role.TEAM_LEAD)
    queued = [gen_task(client, tt) for _ in range(4)]

    actions.assign(queued[0], first.id, lead, version=queued[0].version)
    actions.bulk_assign(queued[1:3], first.id, lead)
    assert _counter(first) == 6
    actions.reassign(queued[0], second.id, lead, reason="closer to the client")
    assert (_counter(first), _counter(second)) == (4, 2)
    _db.session.commit()
    assert claim_next(second.id) == queued[3].id
    assert _counter(second) == 4
    transition(_db.session.get(Task, queued[3].id), Status.CANCELLED)
    assert _counter(second) == 2
    _no_drift()


def test_batch_assignment_and_set_based_changes(db):
    client, tt = gen_client(), gen_task_type(weight=1)
    people = [gen_specialist(capacity=3) for _ in range(2)]
    for _ in range(5):
        gen_task(client, tt)
    _db.session.commit()
    result = run_batch()
    assert result.assigned == 5
    assert sorted(_counter(p) for p in people) == [2, 3]
    _no_drift()
    # Raw SQL, as a repair script or an import would do it.
    _db.session.execute(update(Task).where(Task.assignee_id == people[0].id)
                        .values(status=Status.QUEUED, assignee_id=None))
    _no_drift()
    _db.session.execute(delete(Task).where(Task.assignee_id == people[1].id))
    assert [_counter(p) for p in people] == [0, 0]
    _no_drift()


def test_reweighing_a_type_and_a_profile_made_later(db):
    client, tt = gen_client(), gen_task_type(weight=1)
    person = gen_specialist(capacity=20)
    gen_task(client, tt, status=Status.IN_PROGRESS, assignee=person)
    gen_task(client, tt, status=Status.ASSIGNED, assignee=person)
    gen_task(client, tt, status=Status.COMPLETED, assignee=person)
    _db.session.execute(update(TaskType).where(TaskType.id == tt.id).values(weight=4))
    assert _counter(person) == 8
    # Someone holding work before they had a profile (profiles can be added later).
    newcomer = gen_user(Role.SPECIALIST)
    gen_task(client, tt, status=Status.IN_PROGRESS, assignee=newcomer)
    _db.session.add(StaffProfile(user_id=newcomer.id, tier="general", capacity=5))
    assert _counter(newcomer) == 4
    assert load_person(newcomer.id).load == 4
    _no_drift()


def test_recount_repairs_a_wrong_counter(db):
    client, tt = gen_client(), gen_task_type(weight=2)
    person = gen_specialist(capacity=20)
    gen_task(client, tt, status=Status.IN_PROGRESS, assignee=person)
    _db.session.execute(update(StaffProfile).where(StaffProfile.user_id == person.id)
                        .values(held_weight=99))
    assert held_weight.drift(_db.session.connection()) == [(person.id, 99, 2)]
    held_weight.recount(_db.session.connection())
    assert _counter(person) == 2
    _no_drift()
