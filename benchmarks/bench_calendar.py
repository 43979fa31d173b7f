"""Throughput of sla.calendar for the due-time and elapsed-time hot paths.

SLA due times are recomputed for every work item on intake, reassignment and
calendar change, so both calls must stay cheap. Run from the repo root:

    python benchmarks/bench_calendar.py
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

# The package is not installed; make the repo root importable when run as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sla.calendar import BusinessCalendar  # noqa: E402

CALLS = 100_000
TARGET_HOURS = (0.5, 4, 8, 16, 40)
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 24 * 3600


def random_instants(rng: random.Random, count: int) -> list[datetime]:
    """Uniform instants over 2026, to the microsecond, so starts land in and out of hours."""
    return [YEAR_START + timedelta(seconds=rng.uniform(0, YEAR_SECONDS)) for _ in range(count)]


def report(name: str, run: Callable[[], object]) -> None:
    began = time.perf_counter()
    run()
    elapsed = time.perf_counter() - began
    print(f"{name}: {CALLS} calls in {elapsed:.2f} s ({CALLS / elapsed:,.0f}/s)")


def main() -> None:
    rng = random.Random(20260101)
    calendar = BusinessCalendar("America/New_York", holidays="US")
    starts = random_instants(rng, CALLS)
    targets = [rng.choice(TARGET_HOURS) for _ in range(CALLS)]
    ends = random_instants(rng, CALLS)

    def add_all() -> None:
        for start, hours in zip(starts, targets, strict=True):
            calendar.add_business_hours(start, hours)

    def between_all() -> None:
        for start, end in zip(starts, ends, strict=True):
            calendar.business_hours_between(start, end)

    # The first timing includes building the 2026/2027 tables, as a fresh worker would.
    report("add_business_hours", add_all)
    report("business_hours_between", between_all)


if __name__ == "__main__":
    main()
