"""One scheduler leader at a time, through a Redis lock (real Redis)."""

import pytest
from redis import Redis

from provider_app.scheduler_leader import (
    LOCK_NAME,
    LOCK_TTL,
    LeaderCronScheduler,
    LostLeadership,
    wait_for_leadership,
)


@pytest.fixture
def conn(redis_conn) -> Redis:
    return redis_conn


def test_a_second_scheduler_stands_by_while_the_leader_holds_the_lock(conn):
    leader = conn.lock(LOCK_NAME, timeout=LOCK_TTL, thread_local=False)
    assert leader.acquire(blocking=False)
    standby = conn.lock(LOCK_NAME, timeout=LOCK_TTL, thread_local=False)
    stopping = [True]  # asked to stop at once: it must not have taken the lead
    assert wait_for_leadership(standby, stopping) is False
    assert not standby.owned()
    leader.release()
    assert wait_for_leadership(standby, []) is True
    assert standby.owned()
    assert 0 < conn.ttl(LOCK_NAME) <= LOCK_TTL


def test_the_leader_renews_the_lock_on_each_heartbeat(conn):
    lock = conn.lock(LOCK_NAME, timeout=LOCK_TTL, thread_local=False)
    assert lock.acquire(blocking=False)
    conn.expire(LOCK_NAME, 5)
    scheduler = LeaderCronScheduler(conn, lock)
    scheduler.register_birth()
    scheduler.heartbeat()
    assert conn.ttl(LOCK_NAME) > 5
    scheduler.register_death()


def test_a_leader_that_lost_the_lock_stops_scheduling(conn):
    lock = conn.lock(LOCK_NAME, timeout=LOCK_TTL, thread_local=False)
    assert lock.acquire(blocking=False)
    scheduler = LeaderCronScheduler(conn, lock)
    scheduler.load_config_from_file("provider_app.schedule")
    conn.delete(LOCK_NAME)  # expired during a long pause; someone else may lead now
    conn.set(LOCK_NAME, "another-process-token")
    with pytest.raises(LostLeadership):
        scheduler.enqueue_jobs()
    with pytest.raises(LostLeadership):
        scheduler.heartbeat()
    assert conn.get(LOCK_NAME) == b"another-process-token"
    assert conn.llen("rq:queue:low") == 0  # nothing was enqueued by the deposed leader
