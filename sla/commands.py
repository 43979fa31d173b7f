"""``flask --app wsgi sla …``: run the periodic SLA jobs by hand (operations, demos)."""

from __future__ import annotations

import click

from provider_app.extensions import db

from .blueprint import bp
from .notify import send_outbox
from .sweep import sweep


@bp.cli.command("sweep")
def sweep_command() -> None:
    """Mark tasks at risk or breached, open escalations and raise levels, now."""
    result = sweep()
    db.session.commit()
    click.echo(f"at risk {result.at_risk}, breached {result.breached}, "
               f"escalations opened {result.opened} (superseded {result.superseded}), "
               f"levels raised {result.raised}, notifications {result.notifications}")


@bp.cli.command("send-outbox")
def send_outbox_command() -> None:
    """Send waiting e-mail over SMTP_URL (nothing is sent when it is not set)."""
    sent = send_outbox()
    db.session.commit()
    click.echo(f"{sent} e-mails sent")
