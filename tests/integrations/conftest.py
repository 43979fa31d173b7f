"""Integration tests' world, a real SMTP receiver and a real HTTP receiver on loopback.

Every e-mail goes over real SMTP (smtplib → aiosmtpd → ``email_intake``) and every webhook
over real HTTP (``http.client`` → ``http.server`` in a thread); the totals are printed at
the end of the run (``pytest_terminal_summary``).
"""

from __future__ import annotations

import pytest

from tests.integrations.integrations_support import COUNTS, HttpReceiver, SmtpServer, build_world


@pytest.fixture
def world(db):
    """Committed to the test's savepoint, so the SMTP thread's session sees it."""
    w = build_world()
    db.session.commit()
    return w


@pytest.fixture
def smtp(app, db):
    server = SmtpServer(app)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def receiver():
    server = HttpReceiver()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(app):
    """Change app settings for one test; restored afterwards."""
    saved: dict = {}

    def change(**values):
        for key, value in values.items():
            saved.setdefault(key, app.config.get(key))
            app.config[key] = value

    yield change
    app.config.update(saved)


def pytest_terminal_summary(terminalreporter):
    if COUNTS["emails"] or COUNTS["webhooks"]:
        terminalreporter.write_line(
            f"integrations: {COUNTS['emails']} e-mails sent over real SMTP, "
            f"{COUNTS['webhooks']} webhook requests received over real HTTP")
