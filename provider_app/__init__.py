"""Throughline: the delivery platform an insurance BPO/KPO provider runs on.

``create_app`` composes one ``init_app`` per concern; reading it tells you the
whole application.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Build the app; ``config`` overrides what the environment says (tests use it)."""
    from . import access, database, errors, security_headers, templating
    from .extensions import csrf, db, limiter, login_manager, migrate
    from .settings import check_production_safety, from_environment

    app = Flask(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(from_environment(Path(app.instance_path)))
    if config:
        app.config.update(config)
    check_production_safety(app.config)

    db.init_app(app)
    database.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(Path(__file__).resolve().parent.parent / "migrations"),
        render_as_batch=True,
        compare_type=True,
    )
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    csrf.init_app(app)
    limiter.init_app(app)
    access.init_app(app)
    security_headers.init_app(app)
    templating.init_app(app)
    errors.init_app(app)
    _register_blueprints(app)
    _register_cli(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from client_portal.api import bp as api_bp
    from client_portal.views import bp as portal_bp
    from qa.views import bp as qa_bp
    from sla.views import bp as sla_bp

    from .auth import bp as auth_bp
    from .auth import enforce_idle_timeout
    from .views import bp as provider_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(provider_bp)
    app.register_blueprint(portal_bp, url_prefix="/portal")
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(qa_bp, url_prefix="/qa")
    app.register_blueprint(sla_bp)
    app.before_request(enforce_idle_timeout)


def _register_cli(app: Flask) -> None:
    from .cli import register

    register(app)
