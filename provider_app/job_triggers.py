"""Coalesced "run this job once" triggers: one Redis call per window, not one per commit.

Intake asks for an assignment run after every new task (``enqueue_after_commit`` with a
``once_key``). Done inline, that is a Redis ``SET NX`` per request, and at hundreds of
requests a second per worker it was about 5 % of a web worker's CPU for a call that, under
load, nearly always finds the key already set. Here a commit only records the trigger in
process memory; a daemon thread per process wakes ``window`` seconds after the first one
and makes the ``SET NX`` (and, when it wins, the enqueue) once for everything recorded
since its last pass.

Why nothing is lost: a trigger is recorded *after* its transaction commits, and the thread
takes the recorded triggers (under the lock that records them) *before* its ``SET NX``. So
that ``SET NX`` happens after the commit; if it wins, the job it enqueues reads the queue
later still; if it loses, the key was set by a run that has not yet started — and a run
deletes the key before it reads the queue, so that run sees the task. The only new gap is
a process that dies inside the window (``kill -9``, OOM) with triggers recorded: the
periodic assignment run (every minute) picks their tasks up, as it does when Redis is down.

The thread is started on first use in each process (so never in a gunicorn master before
the fork), and flushes what it holds when the interpreter exits normally (a gunicorn worker
ends with ``sys.exit``). Only web requests record here: jobs and commands send inline
(``jobs.enqueue_after_commit``).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable

from flask import Flask

Trigger = tuple[str, str, str]  # (job function path, once key, queue name)


class TriggerCoalescer:
    """Per-process: triggers recorded by commits, sent by one thread every ``window`` s."""

    def __init__(self, app: Flask, window: float, send: Callable[[Trigger], None]):
        self._app = app
        self._window = window
        self._send = send  # makes the SET NX and the enqueue for one trigger
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: set[Trigger] = set()
        self._pid: int | None = None

    def add(self, trigger: Trigger) -> None:
        """Record a trigger (called after a commit); the thread sends it within the window."""
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._start()
            self._pending.add(trigger)
            self._wake.set()

    def flush(self) -> None:
        """Send every recorded trigger now (the thread's pass; also at exit and in tests)."""
        with self._lock:
            pending, self._pending = self._pending, set()
            self._wake.clear()
        if not pending:
            return
        with self._app.app_context():
            for trigger in sorted(pending):
                try:
                    self._send(trigger)
                except Exception:  # Redis down: the periodic catch-up run re-finds the work
                    self._app.logger.warning("could not enqueue %s; catch-up will retry",
                                             trigger[0])

    def _start(self) -> None:
        self._pid = os.getpid()
        self._pending = set()  # a forked child must not send its parent's triggers
        self._wake = threading.Event()
        threading.Thread(target=self._run, name="job-triggers", daemon=True).start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            # Let the triggers of the next ``window`` seconds join this pass.
            time.sleep(self._window)
            try:
                self.flush()
            except Exception:  # the thread must outlive any one pass
                self._app.logger.exception("job trigger pass failed; the next one goes on")
