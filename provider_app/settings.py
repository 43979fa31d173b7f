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


def wanted_log_format(env) -> str:
    """``json`` or ``text``: an explicit LOG_FORMAT wins, production defaults to JSON."""
    explicit = env.get("LOG_FORMAT", "").strip().lower()
    if explicit in {"json", "text"}:
        return explicit
    return "json" if env.get("THROUGHLINE_ENV") == "production" else "text"


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
        # No pool_pre_ping: PostgreSQL connections are checked at checkout when they may
        # have died unseen (provider_app/database.py: check_pooled_connections).
        "DATABASE_RECHECK_IDLE_SECONDS": float(env.get("DATABASE_RECHECK_IDLE_SECONDS", "30")),
        "REDIS_URL": env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "UPLOAD_DIR": env.get("UPLOAD_DIR", str(instance_path / "uploads")),
        "MAX_CONTENT_LENGTH": int(env.get("MAX_UPLOAD_MB", "25")) * 1024 * 1024,
        "MAX_DOCUMENT_BYTES": int(env.get("MAX_DOCUMENT_MB", "10")) * 1024 * 1024,
        "SMTP_URL": env.get("SMTP_URL", ""),
        "MAIL_FROM": env.get("MAIL_FROM", "throughline@localhost"),
        "RQ_ASYNC": True,
        # Once-key job triggers (assignment after intake) are sent once per window per
        # process, not once per commit (provider_app/job_triggers.py); 0 sends inline.
        "JOB_TRIGGER_WINDOW_SECONDS": float(env.get("JOB_TRIGGER_WINDOW_SECONDS", "0.05")),
        # Sessions and cookies
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "SESSION_COOKIE_NAME": "tl_session",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": production,
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
        "SESSION_IDLE_MINUTES": 30,
        # Server-side sessions in Redis (REDIS_URL); PERMANENT_SESSION_LIFETIME is the
        # absolute limit from sign-in, SESSION_IDLE_MINUTES the idle one.
        "SESSION_KEY_PREFIX": "tl:session:",
        "WTF_CSRF_TIME_LIMIT": None,
        # Multi-factor sign-in (TOTP) and password reset
        "MFA_REQUIRED_FOR_PROVIDER": env.get("MFA_REQUIRED_FOR_PROVIDER", "1").lower()
        not in {"0", "false", "no", "off"},
        "MFA_ISSUER": env.get("MFA_ISSUER", "Throughline"),
        # Fernet key for TOTP secrets at rest; derived from SECRET_KEY when unset.
        "MFA_ENCRYPTION_KEY": env.get("MFA_ENCRYPTION_KEY", ""),
        "MFA_RATE_LIMIT": env.get("MFA_RATE_LIMIT", "10 per minute"),
        "PASSWORD_RESET_MINUTES": 60,
        "PASSWORD_RESET_RATE_LIMIT": env.get("PASSWORD_RESET_RATE_LIMIT", "5 per minute"),
        # Data retention and client exports
        "RETENTION_BATCH_SIZE": 500,
        "EXPORT_DIR": env.get("EXPORT_DIR", str(instance_path / "exports")),
        "EXPORT_KEEP_DAYS": 7,
        # Rate limits (flask-limiter on the same Redis)
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI")
        or env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        # No X-RateLimit-* headers on every response (two Redis reads each); a 429 still
        # says when to retry (Retry-After, errors.py).
        "RATELIMIT_HEADERS_ENABLED": False,
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute"),
        "TOKEN_RATE_LIMIT": env.get("TOKEN_RATE_LIMIT", "600 per minute"),
        # argon2 cost; tests lower it (the browser-test stack through the environment;
        # production refuses less than OWASP's minimum, see check_production_safety)
        # (defaults: OWASP's 19 MiB / 2 passes / 1 lane; why in provider_app/passwords.py)
        "ARGON2_TIME_COST": int(env.get("ARGON2_TIME_COST", "2")),
        "ARGON2_MEMORY_COST": int(env.get("ARGON2_MEMORY_COST", "19456")),
        "ARGON2_PARALLELISM": int(env.get("ARGON2_PARALLELISM", "1")),
        "PAGE_SIZE": 25,
        # Operations (docs/DEPLOYMENT.md): JSON logs, /metrics access, Redis Sentinel
        "LOG_FORMAT": wanted_log_format(env),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "METRICS_TOKEN": env.get("METRICS_TOKEN", ""),
        "SLOW_QUERY_MS": float(env.get("SLOW_QUERY_MS", "0") or 0),
        "REDIS_SENTINELS": env.get("REDIS_SENTINELS", ""),
        "REDIS_SENTINEL_MASTER": env.get("REDIS_SENTINEL_MASTER", "mymaster"),
        # Integrations (docs/INTEGRATIONS.md): e-mail intake, webhooks, output packages
        "INTAKE_DOMAIN": env.get("INTAKE_DOMAIN", "intake.localhost").strip().lower(),
        "MAX_EMAIL_BYTES": int(env.get("MAX_EMAIL_MB", "25")) * 1024 * 1024,
        "PUBLIC_BASE_URL": env.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        "WEBHOOK_ALLOW_LOOPBACK": env.get(
            "WEBHOOK_ALLOW_LOOPBACK", "0" if production else "1"
        ).lower() in {"1", "true", "yes", "on"},
        "WEBHOOK_ENCRYPTION_KEY": env.get("WEBHOOK_ENCRYPTION_KEY", ""),
        "WEBHOOK_TIMEOUT_SECONDS": float(env.get("WEBHOOK_TIMEOUT_SECONDS", "10")),
        "WEBHOOK_MAX_ATTEMPTS": int(env.get("WEBHOOK_MAX_ATTEMPTS", "6")),
        "WEBHOOK_BACKOFF_SECONDS": int(env.get("WEBHOOK_BACKOFF_SECONDS", "30")),
        "WEBHOOK_DISABLE_AFTER": int(env.get("WEBHOOK_DISABLE_AFTER", "15")),
        "OUTPUT_TASK_TYPES": frozenset(
            code.strip().upper()
            for code in env.get("OUTPUT_TASK_TYPES", "COI,ENDT_ADMIN,ENDT_COV,LOSSRUN").split(",")
            if code.strip()
        ),
        "OUTPUT_LINK_DAYS": int(env.get("OUTPUT_LINK_DAYS", "7")),
    }
    # Rate limits off only for test harnesses that sign in many times from one address.
    # Set only when asked: Flask-Limiter keeps "enabled" on its one shared instance.
    if "RATELIMIT_ENABLED" in env:
        config["RATELIMIT_ENABLED"] = env["RATELIMIT_ENABLED"].lower() not in {
            "0", "false", "no", "off"
        }
    return config


def check_production_safety(config: dict) -> None:
    """Refuse to start in production with a missing or development secret, or weak hashing."""
    if config.get("ENV_NAME") != "production":
        return
    key = config.get("SECRET_KEY") or ""
    if key == DEV_SECRET_KEY or len(key) < 32:
        raise ConfigError(
            "THROUGHLINE_ENV=production needs SECRET_KEY set to a random value of "
            "at least 32 characters "
            "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')."
        )
    if config.get("ARGON2_TIME_COST", 2) < 2 or config.get("ARGON2_MEMORY_COST", 19456) < 19456:
        raise ConfigError(
            "THROUGHLINE_ENV=production refuses ARGON2_TIME_COST below 2 or "
            "ARGON2_MEMORY_COST below 19456 (KiB), OWASP's minimum for argon2id."
        )
