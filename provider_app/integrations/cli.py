"""CLI commands of the integrations area, registered by ``provider_app.cli``."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from ..accounts import AccountError, find_client
from ..extensions import db
from .policies import import_policies
from .smtp_server import smtp_intake_command


@click.command("import-policies")
@click.option("--client", "client_code", required=True, help="Client code.")
@click.option("--replace", is_flag=True, help="Also remove numbers the file does not list.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_policies_command(client_code: str, replace: bool, path: Path) -> None:
    """Load a client's policies on file from a CSV (policy_number, insured_name, expires_on)."""
    try:
        client = find_client(client_code)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise click.ClickException("The file is not UTF-8 text.") from None
    result = import_policies(client, text, replace=replace)
    if result.errors:
        db.session.rollback()
        raise click.ClickException("Nothing imported:\n" + "\n".join(result.errors[:50]))
    db.session.commit()
    click.echo(f"{client.code}: {result.added} added, {result.updated} updated, "
               f"{result.removed} removed")


COMMANDS = [smtp_intake_command, import_policies_command]
