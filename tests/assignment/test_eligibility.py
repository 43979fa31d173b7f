"""Eligibility: every rule, table-driven, and the three shapes of the rules agree.

The per-pair function is tested on plain facts (no database); the SQL forms used by
``claim_next`` and the batch are then checked against it on a random world in the database.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from provider_app.assignment.eligibility import (
    PersonFacts,
    SkillNeed,
    TypeFacts,
    candidate_pairs,
    claimable_task_ids,
    load_people,
    load_types,
    person_reasons,
    reasons,
    skill_fit_query,
    skill_relax_minutes,
)
from provider_app.extensions import db as _db
from provider_app.models import TaskTypeSkill
from provider_app.vocab import Availability, StaffTier, Status, Tier
from tests.factories import gen_client, gen_specialist, gen_task, gen_task_type

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # a Wednesday, 15:00 UTC
TODAY = NOW.date()

PERSON = PersonFacts(
    user_id=1, name="Pat", is_specialist=True, tier=StaffTier.GENERAL, capacity=5, load=0,
    skills={"coi": 3}, licences=(("NY", "P&C", date(2027, 1, 1)),), client_ids=None,
    availability=Availability.AVAILABLE, timezone="UTC", shift_start=time(9, 0),
    shift_end=time(17, 0), shift_days=frozenset(range(5)),
)
BPO = TypeFacts(1, "COI", Tier.BPO, 1, None, (SkillNeed("coi", 2),))
KPO = TypeFacts(2, "POLCHK", Tier.KPO, 1, None, (SkillNeed("coi", 2),))
LICENSED = TypeFacts(3, "ENDT_COV", Tier.BPO, 1, "P&C", ())
OPTIONAL = TypeFacts(4, "RENEWAL", Tier.BPO, 1, None,
                     (SkillNeed("coi", 2), SkillNeed("coverage", 3, True, 30)))
NEVER_RELAXES = TypeFacts(5, "SUBMIT", Tier.BPO, 1, None, (SkillNeed("coverage", 3, True),))
HEAVY = TypeFacts(6, "BDX", Tier.BPO, 2, None, ())


def task(**kw) -> SimpleNamespace:
    base = {"client_id": 10, "state": "NY", "received_at": NOW - timedelta(minutes=10),
            "assignee_id": None, "status": Status.QUEUED}
    return SimpleNamespace(**(base | kw))


CASES = [
    # (id, task type, person changes, task changes, time, expected reason codes)
    ("eligible", BPO, {}, {}, NOW, set()),
    ("kpo to general staff", KPO, {}, {}, NOW, {"tier"}),
    ("kpo to insurance-trained", KPO, {"tier": StaffTier.INSURANCE_TRAINED}, {}, NOW, set()),
    ("bpo to insurance-trained", BPO, {"tier": StaffTier.INSURANCE_TRAINED}, {}, NOW, set()),
    ("skill below minimum", BPO, {"skills": {"coi": 1}}, {}, NOW, {"skill"}),
    ("skill missing", BPO, {"skills": {}}, {}, NOW, {"skill"}),
    ("skill exactly at minimum", BPO, {"skills": {"coi": 2}}, {}, NOW, set()),
    ("optional skill before its wait", OPTIONAL, {}, {}, NOW, {"skill"}),
    ("optional skill after its wait", OPTIONAL, {},
     {"received_at": NOW - timedelta(minutes=31)}, NOW, set()),
    ("optional skill met", OPTIONAL, {"skills": {"coi": 3, "coverage": 3}}, {}, NOW, set()),
    ("optional skill without a wait never relaxes", NEVER_RELAXES, {},
     {"received_at": NOW - timedelta(days=30)}, NOW, {"skill"}),
    ("licence valid", LICENSED, {}, {}, NOW, set()),
    ("licence expires today is still valid", LICENSED,
     {"licences": (("NY", "P&C", TODAY),)}, {}, NOW, set()),
    ("licence expired yesterday", LICENSED,
     {"licences": (("NY", "P&C", TODAY - timedelta(days=1)),)}, {}, NOW, {"licence"}),
    ("licence for another state", LICENSED, {}, {"state": "CA"}, NOW, {"licence"}),
    ("licence for another line", LICENSED, {"licences": (("NY", "L&H", date(2027, 1, 1)),)},
     {}, NOW, {"licence"}),
    ("licensed work without a state", LICENSED, {}, {"state": None}, NOW, {"licence"}),
    ("no licence needed, no state", BPO, {}, {"state": None}, NOW, set()),
    ("client allowed", BPO, {"client_ids": frozenset({10, 11})}, {}, NOW, set()),
    ("client not allowed", BPO, {"client_ids": frozenset({11})}, {}, NOW, {"client"}),
    ("capacity left", BPO, {"load": 4}, {}, NOW, set()),
    ("at capacity", BPO, {"load": 5}, {}, NOW, {"capacity"}),
    ("heavy task does not fit", HEAVY, {"load": 4}, {}, NOW, {"capacity"}),
    ("own held task not counted twice", BPO, {"load": 5},
     {"assignee_id": 1, "status": Status.IN_PROGRESS}, NOW, set()),
    ("away", BPO, {"availability": Availability.AWAY}, {}, NOW, {"availability"}),
    ("on leave", BPO, {"availability": Availability.ON_LEAVE}, {}, NOW, {"availability"}),
    ("offline", BPO, {"availability": Availability.OFFLINE}, {}, NOW, {"availability"}),
    ("before shift", BPO, {}, {}, NOW.replace(hour=8, minute=59), {"shift"}),
    ("last minute of shift", BPO, {}, {}, NOW.replace(hour=17, minute=0, second=30), set()),
    ("after shift", BPO, {}, {}, NOW.replace(hour=17, minute=1), {"shift"}),
    ("weekend", BPO, {}, {"received_at": NOW}, NOW + timedelta(days=3), {"shift"}),
    ("shift in the person's time zone", BPO, {"timezone": "America/New_York"}, {},
     NOW, set()),  # 10:00 in New York
    ("off shift in the person's time zone", BPO, {"timezone": "America/New_York"}, {},
     NOW.replace(hour=23), {"shift"}),  # 18:00 in New York
    ("overnight shift after midnight", BPO,
     {"shift_start": time(22, 0), "shift_end": time(6, 0), "shift_days": frozenset({2})}, {},
     NOW.replace(hour=2) + timedelta(days=1), set()),  # Thursday 02:00, Wednesday's shift
    ("overnight shift, day not worked", BPO,
     {"shift_start": time(22, 0), "shift_end": time(6, 0), "shift_days": frozenset({3})}, {},
     NOW.replace(hour=2) + timedelta(days=1), {"shift"}),
    ("no shift set: any time", BPO, {"shift_start": None, "shift_end": None}, {},
     NOW.replace(hour=3), set()),
    ("several at once", KPO, {"skills": {}, "load": 5, "availability": Availability.AWAY}, {},
     NOW, {"tier", "skill", "capacity", "availability"}),
    ("not a specialist", BPO, {"is_specialist": False}, {}, NOW, {"not_specialist"}),
]


@pytest.mark.parametrize(("task_type", "person", "task_kw", "at", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rules(task_type, person, task_kw, at, expected):
    found = reasons(task(**task_kw), task_type, replace(PERSON, **person), at)
    assert {r.code for r in found} == expected
    assert all(r.message for r in found)


def test_hard_and_soft_rules():
    hard = {r.code: r.hard for r in reasons(
        task(state=None), replace(LICENSED, tier=Tier.KPO),
        replace(PERSON, skills={}, client_ids=frozenset(), load=9,
                availability=Availability.AWAY),
        NOW.replace(hour=3))}
    assert hard == {"tier": True, "licence": True, "client": False, "capacity": False,
                    "availability": False, "shift": False}
    assert reasons(task(), BPO, replace(PERSON, is_specialist=False), NOW)[0].hard


def test_reasons_say_why():
    [skill] = reasons(task(), OPTIONAL, replace(PERSON, skills={"coi": 1}), NOW)
    assert "coi ≥ 2 (has 1)" in skill.message
    assert "coverage ≥ 3 (has 0), optional after 30 min in queue" in skill.message
    [licence] = reasons(task(), LICENSED, replace(
        PERSON, licences=(("NY", "P&C", date(2026, 1, 31)),)), NOW)
    assert licence.message == "Needs a valid P&C licence for NY (expired 2026-01-31)."


@pytest.mark.parametrize(("skills", "expected"), [
    ({"coi": 3, "coverage": 3}, 0), ({"coi": 3}, 30), ({"coverage": 5}, None), ({}, None)])
def test_skill_relax_minutes(skills, expected):
    assert skill_relax_minutes(OPTIONAL.skills, skills) == expected


# --- the SQL shapes agree with the per-pair function ------------------------------------------


@pytest.fixture
def world(db):
    """A random world: clients, BPO/KPO types with optional and licensed skills, staff, queue."""
    rng = random.Random(42)
    clients = [gen_client() for _ in range(3)]
    types = [
        gen_task_type(tier="BPO", skills={"coi": 2}),
        gen_task_type(tier="BPO", skills={"coi": 1, "endorsement": 2}, weight=2),
        gen_task_type(tier="KPO", skills={"coverage": 3}, licence_line="P&C"),
        gen_task_type(tier="KPO", skills={"policy": 2}),
        gen_task_type(tier="BPO"),
    ]
    types[0].skills.append(TaskTypeSkill(skill="coverage", min_level=2, optional=True,
                                         relax_after_minutes=45))
    types[3].skills.append(TaskTypeSkill(skill="coi", min_level=4, optional=True))
    _db.session.flush()
    staff = []
    for _ in range(12):
        staff.append(gen_specialist(
            rng.choice(["general", "insurance_trained"]),
            skills={s: rng.randint(1, 5) for s in ("coi", "endorsement", "coverage", "policy")
                    if rng.random() < 0.7},
            capacity=rng.randint(1, 4),
            clients=rng.sample(clients, rng.randint(1, 2)) if rng.random() < 0.3 else None,
            licences=[(st, "P&C", TODAY + timedelta(days=rng.choice([-5, 0, 90])))
                      for st in ("NY", "CA") if rng.random() < 0.6],
        ))
    for person in staff[:4]:  # some load
        gen_task(clients[0], types[4], status=Status.ASSIGNED, assignee=person)
    # Person-level variety (NOW is Wednesday 15:00 UTC): off shift, overnight, elsewhere, away.
    shifts = [(time(9, 0), time(14, 59), "UTC", [2]), (time(22, 0), time(16, 0), "UTC", [1]),
              (time(9, 0), time(17, 0), "America/Los_Angeles", [2]),
              (time(9, 0), time(17, 0), "Asia/Kolkata", [2]), (None, None, "UTC", [])]
    for person, (start, end, tz, days) in zip(staff[4:], shifts, strict=False):
        profile = person.staff_profile
        profile.shift_start, profile.shift_end, profile.timezone = start, end, tz
        profile.shift_days = days
    staff[-1].staff_profile.availability = Availability.AWAY
    _db.session.flush()
    queue = [
        gen_task(rng.choice(clients), rng.choice(types), state=rng.choice(["NY", "CA", None]),
                 received_at=NOW - timedelta(minutes=rng.choice([5, 50, 500])))
        for _ in range(40)
    ]
    return {"staff": staff, "queue": queue, "types": types}


def _expected(world, people=None) -> set[tuple[int, int]]:
    """Every (task, person) pair the per-pair function accepts at NOW."""
    types = load_types()
    people = people or load_people([s.id for s in world["staff"]])
    return {(t.id, p.user_id) for t in world["queue"] for p in people.values()
            if not reasons(t, types[t.task_type_id], p, NOW)}


def _always_on(people):
    """The batch takes only people who passed the person-level rules; make everyone pass."""
    return {k: replace(p, shift_start=None, shift_end=None, availability=Availability.AVAILABLE)
            for k, p in people.items()}


def test_claim_sql_agrees_with_reasons(app, world):
    """claim_next's SQL; on PostgreSQL it also checks availability and shifts in SQL."""
    postgres = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
    people = load_people([s.id for s in world["staff"]])
    queue_ids = {t.id for t in world["queue"]}
    found = set()
    for person in people.values():
        if not postgres and person_reasons(person, NOW):
            continue  # on SQLite claim_next checks these in Python before its SQL
        found |= {(tid, person.user_id) for tid in claimable_task_ids(person.user_id, NOW)
                  if tid in queue_ids}
    expected = _expected(world)
    assert found == expected
    assert 10 < len(expected) < len(queue_ids) * len(people)  # the world is not trivial


def test_batch_candidates_agree_with_reasons(world):
    types = load_types()
    type_list = list(types.values())
    pos = {t.id: i for i, t in enumerate(type_list)}
    by_id = _always_on(load_people([s.id for s in world["staff"]]))
    people = list(by_id.values())
    queue = world["queue"]
    fit = _db.session.execute(skill_fit_query(list(types), [p.user_id for p in people])).all()
    cands = candidate_pairs(
        task_type=np.array([pos[t.task_type_id] for t in queue]),
        task_client=np.array([t.client_id for t in queue]),
        task_state=[t.state for t in queue],
        task_waited=np.array([(NOW - t.received_at).total_seconds() / 60 for t in queue]),
        task_at_risk=np.zeros(len(queue), dtype=bool),
        types=type_list, staff=people, skill_fit=fit, on=TODAY,
        bpo_overflow_when_at_risk=False,
    )
    found = {(queue[i].id, people[j].user_id)
             for i, j in zip(cands.pair_task.tolist(), cands.pair_staff.tolist(), strict=True)}
    assert found == _expected(world, by_id)
    without_pairs = set(range(len(queue))) - set(cands.pair_task.tolist())
    assert all(cands.stage[i] >= 0 for i in without_pairs)


def test_skill_fit_query_matches_python(world):
    types = load_types()
    people = load_people([s.id for s in world["staff"]])
    rows = {(t, s): r for t, s, r in _db.session.execute(
        skill_fit_query(list(types), list(people))).all()}
    for t in types.values():
        for p in people.values():
            assert rows.get((t.id, p.user_id)) == skill_relax_minutes(t.skills, p.skills)


def test_load_people_in_constant_queries(world, count_queries):
    ids = [s.id for s in world["staff"]]
    with count_queries() as counter:
        people = load_people(ids)
    assert len(people) == len(ids)
    assert counter.count == 2  # profiles (with the held-weight counter), then the facts
    assert {p.load for p in people.values()} - {0}  # the held tasks were counted
