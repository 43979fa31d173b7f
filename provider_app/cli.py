"""Flask CLI commands: seed-demo, create-user, create-token (the public contract)."""

from __future__ import annotations

import secrets

import click
from flask import Flask

from .accounts import AccountError, create_user, find_client, issue_token
from .extensions import db
from .vocab import Role


def register(app: Flask) -> None:
    from .scale_seed import seed_scale_command

    app.cli.add_command(seed_scale_command)  # seed-scale: capacity-test data (docs/DEPLOYMENT.md)
    from .integrations.cli import COMMANDS as integration_commands

    for command in integration_commands:  # smtp-intake, import-policies (docs/INTEGRATIONS.md)
        app.cli.add_command(command)

    @app.cli.command("seed-demo")
    def seed_demo_command() -> None:
        """Load demo clients, staff, task types, SOPs, contracts and tasks (idempotent)."""
        from .demo import DEMO_PASSWORD, seed_demo

        lines = seed_demo()
        db.session.commit()
        click.echo(lines[0])
        click.echo(f"Logins (password for all: {DEMO_PASSWORD}):")
        for line in lines[1:]:
            click.echo(f"  {line}")

    @app.cli.command("create-user")
    @click.option("--email", required=True, help="Sign-in e-mail address.")
    @click.option(
        "--role",
        "roles",
        required=True,
        multiple=True,
        type=click.Choice([r.value for r in Role]),
        help="Role; repeat for several provider roles.",
    )
    @click.option("--client", "client_code", help="Client code, for client roles.")
    @click.option("--name", default="", help="Display name.")
    @click.option("--password", help="Password (generated and printed when omitted).")
    def create_user_command(email, roles, client_code, name, password) -> None:
        """Create a user with one or more roles."""
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        try:
            client = find_client(client_code) if client_code else None
            user = create_user(email, list(roles), password=password, client=client, name=name)
        except AccountError as exc:
            raise click.ClickException(str(exc)) from exc
        db.session.commit()
        click.echo(f"Created {user.email} ({', '.join(roles)})")
        if generated:
            click.echo(f"Password: {password}")

    @app.cli.command("create-token")
    @click.option("--client", "client_code", required=True, help="Client code.")
    @click.option("--name", default="", help="Label for the token.")
    def create_token_command(client_code, name) -> None:
        """Create a client API token; it is printed once, on the last line."""
        try:
            client = find_client(client_code)
        except AccountError as exc:
            raise click.ClickException(str(exc)) from exc
        plain, token = issue_token(client, name=name)
        db.session.commit()
        click.echo(f"Token {token.prefix}… for {client.code}; store it now, it is not shown again:")
        click.echo(plain)
