"""The two CLI commands: ``smtp-intake`` as its own process, ``import-policies``."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from provider_app.integrations.models import PolicyOnFile
from tests.factories import gen_client
from tests.integrations.integrations_support import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_smtp_intake_runs_as_its_own_process_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "UPLOAD_DIR": str(tmp_path / "uploads"), "LOG_FORMAT": "text"}
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "smtp-intake", "--host", "127.0.0.1",
         "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()
        assert f"SMTP intake listening on 127.0.0.1:{port}" in line, line
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            code, banner = client.ehlo()
            assert code == 250 and b"intake.localhost" in banner
            assert client.noop()[0] == 250
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0 and "SMTP intake stopped" in output


def test_import_policies_from_the_command_line(app, db, tmp_path):
    client = gen_client(code="CLIPOL")
    db.session.commit()
    good = tmp_path / "policies.csv"
    good.write_text("policy_number,insured_name,expires_on\nGL-100200,Acme,2030-01-01\n")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["import-policies", "--client", "CLIPOL", str(good)])
    assert result.exit_code == 0, result.output
    assert "CLIPOL: 1 added, 0 updated, 0 removed" in result.output
    assert db.session.scalar(select(PolicyOnFile.policy_number).where(
        PolicyOnFile.client_id == client.id)) == "GL-100200"
    bad = tmp_path / "bad.csv"
    bad.write_text("policy_number\nnot a number!\n")
    refused = runner.invoke(args=["import-policies", "--client", "CLIPOL", str(bad)])
    assert refused.exit_code != 0 and "Row 2" in refused.output
    unknown = runner.invoke(args=["import-policies", "--client", "NOPE", str(good)])
    assert unknown.exit_code != 0
