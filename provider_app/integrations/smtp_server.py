"""The SMTP receiver: ``flask --app wsgi smtp-intake --host 127.0.0.1 --port 2525``.

An aiosmtpd server run as its own process (typically behind the organisation's MTA, which
does TLS, SPF/DKIM/DMARC and spam filtering and relays ``*@<INTAKE_DOMAIN>`` to it). The
handler stays thin: RCPT accepts only intake addresses of active clients, DATA hands the
raw bytes to ``email_intake.process_message`` in a worker thread with an app context (the
database work must not block the event loop), one transaction per message. A crash answers
451 so the sending MTA retries later; the Message-ID makes that retry harmless.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from ..extensions import db
from . import email_intake

if TYPE_CHECKING:
    from aiosmtpd.controller import Controller

TEMPORARY_FAILURE = "451 4.3.0 Temporary failure; please try again later"


class IntakeHandler:
    """aiosmtpd handler hooks; everything with a database runs on the executor."""

    def __init__(self, app: Flask, workers: int = 4):
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=workers,
                                           thread_name_prefix="smtp-intake")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        loop = asyncio.get_running_loop()
        known = await loop.run_in_executor(self.executor, self._known, address)
        if not known:
            return "550 5.1.1 No such intake address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        raw = envelope.original_content or envelope.content
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, self._deliver, raw,
                                              envelope.mail_from or "", list(envelope.rcpt_tos))
        except Exception:
            self.app.logger.exception("e-mail intake failed; the sender's MTA will retry")
            return TEMPORARY_FAILURE

    def _known(self, address: str) -> bool:
        with self.app.app_context():
            try:
                return email_intake.recipient_client(address) is not None
            finally:
                db.session.rollback()  # a lookup: hold no transaction open until DATA

    def _deliver(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> str:
        with self.app.app_context():
            result = email_intake.process_message(raw, mail_from, rcpt_tos)
            self.app.logger.info("e-mail intake: %s", ", ".join(result.outcomes) or "nothing")
            return result.smtp_reply


def make_controller(app: Flask, host: str, port: int) -> Controller:
    """A started-on-demand aiosmtpd controller serving the intake handler."""
    # Imported here: the CLI registers this command in every process, but only the SMTP
    # intake process needs aiosmtpd.
    from aiosmtpd.controller import Controller

    return Controller(
        IntakeHandler(app), hostname=host, port=port,
        data_size_limit=app.config["MAX_EMAIL_BYTES"],
        server_hostname=app.config["INTAKE_DOMAIN"], ident="Throughline intake",
    )


@click.command("smtp-intake")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=2525, show_default=True, type=int, help="Port to listen on.")
@with_appcontext
def smtp_intake_command(host: str, port: int) -> None:
    """Receive client e-mail for *@INTAKE_DOMAIN and turn it into tasks (runs until stopped)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    controller = make_controller(app, host, port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    controller.start()
    click.echo(f"SMTP intake listening on {host}:{port} for *@{app.config['INTAKE_DOMAIN']}")
    try:
        stop.wait()
    finally:
        controller.stop()
        click.echo("SMTP intake stopped")
