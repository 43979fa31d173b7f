"""One place where configuration is read from the environment.

Everything the app needs to know about its surroundings comes from here, so a
laptop (SQLite + local Redis) and production (PostgreSQL + Redis, several
machines) run the same code with different environment variables.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-insecure-change-me"  # noqa: S105 - marker value refused in production


class ConfigError(RuntimeError):
    """Raised when the environment cannot run the app safely."""


def normalise_database_url(url: str) -> str:
    """Let operators write the plain ``postgresql://`` form; we pick the driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def default_database_url(instance_path: Path) -> str:
    return f"sqlite:///{instance_path / 'throughline.db'}"


def from_environment(instance_path: Path) -> dict:
    """Build the config mapping from environment variables (with safe local defaults)."""
    env = os.environ
    production = env.get("THROUGHLINE_ENV", "development") == "production"
    database_url = env.get("DATABASE_URL") or default_database_url(instance_path)
    replica_url = env.get("DATABASE_REPLICA_URL")
    config: dict = {
        "ENV_NAME": "production" if production else "development",
        "SECRET_KEY": env.get("SECRET_KEY", DEV_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url),
        "SQLALCHEMY_BINDS": (
            {"replica": normalise_database_url(replica_url)} if replica_url else {}
        ),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "UPLOAD_DIR": env.get("UPLOAD_DIR", str(instance_path / "uploads")),
        "MAX_CONTENT_LENGTH": int(env.get("MAX_UPLOAD_MB", "25")) * 1024 * 1024,
        "MAX_DOCUMENT_BYTES": int(env.get("MAX_DOCUMENT_MB", "10")) * 1024 * 1024,
        "SMTP_URL": env.get("SMTP_URL", ""),
        "MAIL_FROM": env.get("MAIL_FROM", "throughline@localhost"),
        "RQ_ASYNC": True,
        # Sessions and cookies
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_NAME": "tl_session",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": production,
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
        "SESSION_IDLE_MINUTES": 30,
        "WTF_CSRF_TIME_LIMIT": None,
        # Rate limits (flask-limiter on the same Redis)
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI")
        or env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute"),
        "TOKEN_RATE_LIMIT": env.get("TOKEN_RATE_LIMIT", "600 per minute"),
        # argon2 cost; tests lower it
        "ARGON2_TIME_COST": 3,
        "ARGON2_MEMORY_COST": 65536,
        "PAGE_SIZE": 25,
    }
    return config


def check_production_safety(config: dict) -> None:
    """Refuse to start in production with a missing or development secret."""
    if config.get("ENV_NAME") != "production":
        return
    key = config.get("SECRET_KEY") or ""
    if key == DEV_SECRET_KEY or len(key) < 32:
        raise ConfigError(
            "THROUGHLINE_ENV=production needs SECRET_KEY set to a random value of "
            "at least 32 characters "
            "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')."
        )
