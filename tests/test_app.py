"""The app factory and configuration."""

import pytest

from provider_app import create_app
from provider_app.settings import ConfigError, normalise_database_url


def test_plain_postgresql_url_gets_a_driver():
    assert normalise_database_url("postgresql://u@h:5432/d") == "postgresql+psycopg://u@h:5432/d"
    assert normalise_database_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_production_refuses_the_development_secret(monkeypatch):
    monkeypatch.setenv("THROUGHLINE_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(ConfigError):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_starts_with_a_real_secret(monkeypatch):
    monkeypatch.setenv("THROUGHLINE_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_default_database_is_sqlite_under_instance(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("instance/throughline.db")


def test_security_headers(client):
    response = client.get("/login")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "same-origin"
