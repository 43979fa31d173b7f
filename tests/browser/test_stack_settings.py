"""The environment switches the live browser-test stack relies on (no browser needed).

The stack turns rate limits off and lowers the argon2 cost through the
environment; production must refuse the weakened hashing.
"""

from pathlib import Path

import pytest

from provider_app.settings import ConfigError, check_production_safety, from_environment


def test_rate_limits_can_be_switched_off_from_the_environment(monkeypatch):
    monkeypatch.delenv("RATELIMIT_ENABLED", raising=False)
    assert "RATELIMIT_ENABLED" not in from_environment(Path("/tmp"))  # Flask-Limiter: on
    monkeypatch.setenv("RATELIMIT_ENABLED", "false")
    assert from_environment(Path("/tmp"))["RATELIMIT_ENABLED"] is False


def test_argon2_cost_comes_from_the_environment(monkeypatch):
    assert from_environment(Path("/tmp"))["ARGON2_TIME_COST"] == 2  # OWASP: 19 MiB, t=2
    monkeypatch.setenv("ARGON2_TIME_COST", "1")
    monkeypatch.setenv("ARGON2_MEMORY_COST", "1024")
    config = from_environment(Path("/tmp"))
    assert (config["ARGON2_TIME_COST"], config["ARGON2_MEMORY_COST"]) == (1, 1024)


def test_production_refuses_weak_password_hashing(monkeypatch):
    monkeypatch.setenv("THROUGHLINE_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("ARGON2_MEMORY_COST", "1024")
    with pytest.raises(ConfigError, match="ARGON2"):
        check_production_safety(from_environment(Path("/tmp")))
    monkeypatch.delenv("ARGON2_MEMORY_COST")
    check_production_safety(from_environment(Path("/tmp")))
