"""The floor for bench_intake.py: a bare Flask endpoint inserting one row into ``tasks``.

No authentication, validation, SLA clock, audit or idempotency: JSON in, one INSERT
(with the model's own column defaults) and a commit, JSON out, on the same driver,
pool settings and database as the real app. Run it with gunicorn:
``DATABASE_URL=... gunicorn -w 2 benchmarks.bare_insert_app:app``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask, jsonify, request
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provider_app.database import check_pooled_connections  # noqa: E402
from provider_app.db_types import utcnow  # noqa: E402
from provider_app.models import Task  # noqa: E402
from provider_app.settings import normalise_database_url  # noqa: E402

engine = create_engine(normalise_database_url(os.environ["DATABASE_URL"]))
check_pooled_connections(engine, 30)  # the app's own pool check (provider_app/database.py)
TASKS = Task.__table__
CLIENT_ID = int(os.environ["BENCH_CLIENT_ID"])
TASK_TYPE_ID = int(os.environ["BENCH_TASK_TYPE_ID"])
app = Flask(__name__)


@app.post("/bare")
def bare_insert():
    payload = request.get_json()
    now = utcnow()
    with engine.begin() as connection:
        task_id = connection.execute(
            TASKS.insert().returning(TASKS.c.public_id),
            {"client_id": CLIENT_ID, "task_type_id": TASK_TYPE_ID, "priority": "normal",
             "priority_order": 2, "external_ref": payload.get("external_ref"),
             "fields": payload.get("fields", {}), "status": "queued", "source": "api",
             "received_at": now, "updated_at": now},
        ).scalar_one()
    return jsonify(id=task_id), 201


@app.get("/ready")
def ready():
    return "ok"
