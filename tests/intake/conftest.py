"""Intake test world: two clients with contracts, task types, users and API tokens."""

from __future__ import annotations

import pytest

from tests.intake.intake_support import build_world


@pytest.fixture
def world(db):
    """Committed (to the test's savepoint) so a request that fails and rolls back keeps it."""
    w = build_world()
    db.session.commit()
    return w
