"""QA test helpers: a small world (client, task type, people) and task walkers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from provider_app.extensions import db as _db
from provider_app.lifecycle import transition
from provider_app.models import Client, Lot, Task, TaskType, User
from provider_app.vocab import Role, Status
from qa.reviews import claim, complete_review
from qa.routing import route_submitted
from qa.scorecard import ItemEntry
from tests.factories import (
    gen_client,
    gen_contract,
    gen_specialist,
    gen_task,
    gen_task_type,
    gen_user,
)


@dataclass
class World:
    client: Client
    task_type: TaskType
    specialist: User
    reviewer: User
    lead: User

    def set_policy(self, **policy) -> None:
        sop = self.task_type.current_sop()
        sop.sampling_policy = policy
        _db.session.flush()

    def worked(self, specialist: User | None = None, **kw) -> Task:
        """A task the specialist has in progress (moved there by them, as in the workspace)."""
        who = specialist or self.specialist
        task = gen_task(self.client, self.task_type, status=Status.ASSIGNED, assignee=who, **kw)
        transition(task, Status.IN_PROGRESS, actor=who)
        return task

    def submit(self, task: Task, specialist: User | None = None) -> Status:
        who = specialist or self.specialist
        transition(task, Status.SUBMITTED, actor=who)
        return route_submitted(task, who)

    def submitted(self, specialist: User | None = None, **kw) -> Task:
        task = self.worked(specialist, **kw)
        self.submit(task, specialist)
        return task

    def lot(self, size: int) -> tuple[Lot, list[Task]]:
        lot = Lot(client_id=self.client.id, task_type_id=self.task_type.id,
                  file_name=f"batch-{size}.csv", row_count=size)
        _db.session.add(lot)
        _db.session.flush()
        tasks = [self.worked(lot_id=lot.id) for _ in range(size)]
        return lot, tasks

    def review(self, task: Task, passed: bool = True, *, critical: bool = False,
               reviewer: User | None = None, **kw):
        """Claim and score ``task``: pass, a minor fail or a critical fail."""
        who = reviewer or self.reviewer
        review = claim(task, who)
        return complete_review(review, who, entries(task, passed, critical=critical), **kw)


def entries(task: Task, passed: bool = True, *, critical: bool = False) -> list[ItemEntry]:
    """Item results for the factory scorecard (1: critical, weight 3; 2: weight 1)."""
    items = sorted(task.sop.scorecard, key=lambda i: i.position)
    crit, minor = items[0], items[1]
    if passed:
        return [ItemEntry(crit.id, "pass"), ItemEntry(minor.id, "pass")]
    if critical:
        return [ItemEntry(crit.id, "fail", "wrong_limits", "limits wrong"),
                ItemEntry(minor.id, "pass")]
    # 3 / 4 = 75 %, below the 90 % threshold
    return [ItemEntry(crit.id, "pass"), ItemEntry(minor.id, "fail", "keying_error", "typo")]


@pytest.fixture
def world(db) -> World:
    client = gen_client()
    task_type = gen_task_type()
    gen_contract(client)
    return World(
        client=client,
        task_type=task_type,
        specialist=gen_specialist(),
        reviewer=gen_user(Role.QA_REVIEWER),
        lead=gen_user(Role.TEAM_LEAD),
    )
