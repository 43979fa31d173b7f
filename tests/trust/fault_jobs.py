"""A job for the worker-kill tests (imported by a real ``rq worker`` subprocess)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def slow_step(marker: str, seconds: float = 120) -> str:
    """First run: leave ``marker`` and sleep, so the test can kill the worker mid-job.
    A later run (the retry, or a requeue) finds the marker and finishes at once."""
    path = Path(marker)
    if path.exists():
        return "finished on a later run"
    path.write_text(str(os.getpid()))
    time.sleep(seconds)
    return "finished"
