"""The public CLI: seed-demo, create-user, create-token."""

from sqlalchemy import func, select

from provider_app.models import Client, Task, TaskType, User
from provider_app.vocab import Status
from tests.factories import gen_client


def test_create_user_for_a_client(app, db):
    gen_client("ACME")
    result = app.test_cli_runner().invoke(
        args=["create-user", "--email", "Jo@Acme.test", "--role", "client_admin",
              "--client", "acme", "--password", "long enough pw"]
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.email == "jo@acme.test"))
    assert user.client.code == "ACME"


def test_create_user_generates_a_password_when_omitted(app, db):
    result = app.test_cli_runner().invoke(
        args=["create-user", "--email", "lead2@x.test", "--role", "team_lead",
              "--role", "qa_reviewer"]
    )
    assert result.exit_code == 0, result.output
    assert "Password:" in result.output


def test_create_user_explains_bad_input(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-user", "--email", "a@x.test", "--role", "client_user"])
    assert result.exit_code != 0 and "--client" in result.output
    result = runner.invoke(args=["create-user", "--email", "a@x.test", "--role", "wizard"])
    assert result.exit_code != 0 and "wizard" in result.output
    result = runner.invoke(
        args=["create-user", "--email", "a@x.test", "--role", "client_user", "--client", "NOPE"]
    )
    assert result.exit_code != 0 and "No client" in result.output


def test_create_token_prints_the_token_last_and_it_works(app, client):
    gen_client("TOKENCO")
    result = app.test_cli_runner().invoke(args=["create-token", "--client", "TOKENCO"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("tl_")
    response = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_seed_demo_is_idempotent_and_complete(app, db):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    counts = lambda model: db.session.scalar(select(func.count()).select_from(model))  # noqa: E731
    before = (counts(Client), counts(User), counts(TaskType), counts(Task))
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output
    assert (counts(Client), counts(User), counts(TaskType), counts(Task)) == before
    codes = set(db.session.scalars(select(Client.code)))
    assert {"NORTHSTAR", "SUMMIT", "HARBOR"} <= codes
    assert len(set(db.session.scalars(select(TaskType.code)))) >= 13
    statuses = set(db.session.scalars(select(Task.status).distinct()))
    assert statuses == set(Status)
    for role in ("admin", "team_lead", "specialist", "qa_reviewer", "client_admin",
                 "client_user"):
        assert role in first.output
