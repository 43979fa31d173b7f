"""The SLA clock: thresholds from the contract, pauses, and the outcome from history."""

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provider_app.models import CalendarVersion
from provider_app.vocab import SlaState
from sla.clock import ONE_MICROSECOND
from sla.outcome import elapsed_business_hours, sla_outcome
from tests.factories import gen_client, gen_contract, gen_task_type
from tests.sla.sla_support import S, new_task, ny, to_in_progress, walk

US = timedelta(microseconds=1)


@pytest.fixture
def setup(db):
    client, tt = gen_client(), gen_task_type()
    gen_contract(client, {(tt, "normal"): 4, (tt, "high"): 40, (tt, "urgent"): 0.5,
                          (tt, "low"): 1})
    return client, tt


def test_clock_starts_with_at_risk_due_and_breach_instants(setup):
    task = new_task(*setup, ny(2026, 1, 12, 10))
    assert task.sla_target_hours == 4
    assert task.at_risk_at == ny(2026, 1, 12, 13)  # 75 % of 4 h
    assert task.due_at == ny(2026, 1, 12, 14)
    assert task.breach_at == ny(2026, 1, 12, 14) + US
    assert task.sla_state == SlaState.ON_TRACK


def test_due_at_closing_breaches_only_after_the_next_opening(setup):
    task = new_task(*setup, ny(2026, 1, 12, 13))
    assert task.due_at == ny(2026, 1, 12, 17)
    assert task.breach_at == ny(2026, 1, 13, 9) + US


def test_at_risk_threshold_follows_the_contract(db):
    client, tt = gen_client(), gen_task_type()
    gen_contract(client, {(tt, "normal"): 8}, at_risk_pct=50)
    task = new_task(client, tt, ny(2026, 1, 12, 9))
    assert task.at_risk_at == ny(2026, 1, 12, 13)


def test_calendar_hours_contract_runs_around_the_clock(db):
    client, tt = gen_client(), gen_task_type()
    gen_contract(client, {(tt, "normal"): 4}, calendar_hours=True)
    task = new_task(client, tt, ny(2026, 1, 10, 10))  # a Saturday
    assert task.due_at == ny(2026, 1, 10, 14)
    assert task.breach_at == ny(2026, 1, 10, 14) + US


def test_resume_pushes_every_threshold_out_by_the_pause(setup):
    task = to_in_progress(new_task(*setup, ny(2026, 1, 12, 10)), ny(2026, 1, 12, 10))
    walk(task, (S.PENDING_CLIENT, ny(2026, 1, 12, 11)))
    assert task.sla_paused_since == ny(2026, 1, 12, 11)
    walk(task, (S.IN_PROGRESS, ny(2026, 1, 13, 10)))
    assert task.sla_paused_since is None
    assert task.at_risk_at == ny(2026, 1, 13, 12)
    assert task.due_at == ny(2026, 1, 13, 13)
    assert task.breach_at == ny(2026, 1, 13, 13) + US


def test_thresholds_crossed_before_the_pause_stay_put(setup):
    task = to_in_progress(new_task(*setup, ny(2026, 1, 12, 10)), ny(2026, 1, 12, 10))
    walk(task, (S.PENDING_CLIENT, ny(2026, 1, 12, 13, 30)), (S.IN_PROGRESS, ny(2026, 1, 13, 10)))
    assert task.at_risk_at == ny(2026, 1, 12, 13)
    assert task.due_at == ny(2026, 1, 13, 10, 30)


def test_a_new_calendar_version_never_changes_a_running_task(setup, db):
    client, tt = setup
    task = to_in_progress(new_task(client, tt, ny(2026, 1, 12, 10)), ny(2026, 1, 12, 10))
    db.session.add(CalendarVersion(
        client_id=client.id, effective_from=date(2026, 1, 13), timezone="America/New_York",
        hours={str(d): [["06:00", "22:00"]] for d in range(7)}, holiday_country=None,
    ))
    walk(task, (S.PENDING_CLIENT, ny(2026, 1, 12, 11)), (S.IN_PROGRESS, ny(2026, 1, 13, 10)))
    assert task.due_at == ny(2026, 1, 13, 13)  # still 09:00-17:00: the version of receipt day
    later = new_task(client, tt, ny(2026, 1, 13, 20))
    assert later.due_at == ny(2026, 1, 14, 8)  # work received from then on uses the new hours


def test_completion_at_next_opening_after_a_closing_due_time_is_met(setup):
    task = to_in_progress(new_task(*setup, ny(2026, 1, 12, 13)), ny(2026, 1, 12, 13))
    walk(task, (S.SUBMITTED, ny(2026, 1, 13, 9)), (S.COMPLETED, ny(2026, 1, 13, 9)))
    assert task.completed_at > task.due_at  # later by the clock on the wall...
    assert task.sla_met is True  # ...but not by a second of business time
    assert task.sla_elapsed_hours == 4.0
    assert task.sla_state == SlaState.ON_TRACK
    assert task.at_risk_at is None  # out of the sweep...
    assert task.breach_at > task.due_at  # ...but re-run reports still know the breach instant


def test_completion_a_minute_later_is_breached(setup):
    task = to_in_progress(new_task(*setup, ny(2026, 1, 12, 13)), ny(2026, 1, 12, 13))
    walk(task, (S.SUBMITTED, ny(2026, 1, 13, 9, 1)), (S.COMPLETED, ny(2026, 1, 13, 9, 1)))
    assert task.sla_met is False
    assert task.sla_elapsed_hours == pytest.approx(4 + 1 / 60)
    assert task.sla_state == SlaState.BREACHED


def test_time_pending_client_does_not_count_towards_the_outcome(setup):
    task = to_in_progress(new_task(*setup, ny(2026, 1, 12, 10)), ny(2026, 1, 12, 10))
    walk(task, (S.PENDING_CLIENT, ny(2026, 1, 12, 11)), (S.IN_PROGRESS, ny(2026, 1, 14, 10)),
         (S.SUBMITTED, ny(2026, 1, 14, 12)), (S.COMPLETED, ny(2026, 1, 14, 12)))
    assert task.sla_elapsed_hours == 3.0
    assert task.sla_met is True


def test_cancelling_a_paused_task_settles_without_an_outcome(setup):
    task = to_in_progress(new_task(*setup, ny(2026, 1, 12, 10)), ny(2026, 1, 12, 10))
    walk(task, (S.PENDING_CLIENT, ny(2026, 1, 12, 12)), (S.CANCELLED, ny(2026, 1, 20, 12)))
    assert task.sla_met is None
    assert task.sla_elapsed_hours == 2.0
    assert task.sla_paused_since is None and task.at_risk_at is None


def test_outcome_of_an_open_task_is_measured_now_or_at_a_given_instant(setup):
    task = to_in_progress(new_task(*setup, ny(2026, 1, 12, 10)), ny(2026, 1, 12, 10))
    halfway = sla_outcome(task, ny(2026, 1, 12, 12))
    assert halfway.elapsed_hours == 2.0 and halfway.remaining_hours == 2.0 and halfway.met
    assert not sla_outcome(task).met  # months later


def test_elapsed_before_receipt_is_zero(setup):
    task = new_task(*setup, ny(2026, 1, 12, 10))
    assert elapsed_business_hours(task, ny(2026, 1, 12, 9)) == 0


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    received=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 20),
                          timezones=st.just(UTC)),
    priority=st.sampled_from(["urgent", "low", "normal", "high"]),
    pauses=st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 6000)), max_size=4),
)
def test_history_agrees_with_the_stored_clock(setup, received, priority, pauses):
    """Replaying the audited history gives exactly the thresholds the clock stored."""
    task = new_task(*setup, received.replace(microsecond=0), priority=priority)
    target = task.sla_target_hours
    at = task.received_at
    to_in_progress(task, at)
    for run, pause in pauses:
        at += timedelta(minutes=run)
        walk(task, (S.PENDING_CLIENT, at))
        at += timedelta(minutes=pause)
        walk(task, (S.IN_PROGRESS, at))
    for instant, hours in [(task.at_risk_at, target * 0.75), (task.due_at, target),
                           (task.breach_at, target + ONE_MICROSECOND)]:
        assert elapsed_business_hours(task, instant) == pytest.approx(hours, abs=1e-9)


def test_each_transition_is_one_version_step(setup):
    """The clock's queries must not flush the task halfway through a transition."""
    task = to_in_progress(new_task(*setup, ny(2026, 1, 12, 10)), ny(2026, 1, 12, 10))
    for status, at in [(S.PENDING_CLIENT, ny(2026, 1, 12, 11)),
                       (S.IN_PROGRESS, ny(2026, 1, 13, 10)),
                       (S.SUBMITTED, ny(2026, 1, 13, 11)),
                       (S.COMPLETED, ny(2026, 1, 13, 11))]:
        before = task.version
        walk(task, (status, at))
        assert task.version == before + 1, status
