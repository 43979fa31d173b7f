"""Throughline: the delivery platform an insurance BPO/KPO provider runs on.

``create_app`` composes one ``init_app`` per concern; reading it tells you the
whole application.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask


def create_app(config: dict | None = None) -> Flask:
    """Build the app; ``config`` overrides what the environment says (tests use it)."""
    from . import access, database, errors, security_headers, sessions, templating
    from .extensions import csrf, db, limiter, login_manager, migrate
    from .settings import check_production_safety, from_environment

    app = Flask(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(from_environment(Path(app.instance_path)))
    if config:
        app.config.update(config)
    check_production_safety(app.config)

    # First: the request id and the latency timer wrap every other hook.
    from . import logging_setup, metrics, request_id, slow_queries

    logging_setup.init_app(app)
    request_id.init_app(app)
    metrics.init_app(app)
    db.init_app(app)
    database.init_app(app)
    slow_queries.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=str(Path(__file__).resolve().parent.parent / "migrations"),
        render_as_batch=True,
        compare_type=True,
    )
    sessions.init_app(app)  # before access: an expired session is ended first
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    csrf.init_app(app)
    limiter.init_app(app)
    # Every limit here is a view decorator (sign-in, code step, reset: checked when the
    # view runs) or the API's per-credential limit (client_portal.api_auth); no default,
    # application or blueprint limits. flask-limiter's before-request pass would evaluate
    # none of them on every request, at a cost the API measured (docs/PERFORMANCE.md).
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks:  # absent when the limiter is off
        hooks.remove(limiter._check_request_limit)
    access.init_app(app)
    security_headers.init_app(app)
    templating.init_app(app)
    errors.init_app(app)
    _register_blueprints(app)
    _register_cli(app)
    return app


def _register_blueprints(app: Flask) -> None:
    from client_portal.api import bp as api_bp
    from client_portal.data_export import bp as data_export_bp
    from client_portal.views import bp as portal_bp
    from client_portal.webhooks import bp as webhooks_bp
    from qa.views import bp as qa_bp
    from sla.reporting.views import api_bp as reports_api_bp
    from sla.reporting.views import bp as reports_bp
    from sla.views import bp as sla_bp

    from .audit_views import bp as audit_bp
    from .auth import bp as auth_bp
    from .intake.routes import bp as intake_bp
    from .integrations.views import bp as integrations_bp
    from .ops import bp as ops_bp
    from .views import bp as provider_bp

    app.register_blueprint(ops_bp)  # /healthz, /readyz, /metrics
    app.register_blueprint(auth_bp)
    app.register_blueprint(intake_bp)  # /documents/<id> for provider staff
    app.register_blueprint(audit_bp)  # /admin/audit
    app.register_blueprint(data_export_bp)  # /portal/export
    app.register_blueprint(provider_bp)
    app.register_blueprint(portal_bp, url_prefix="/portal")
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(qa_bp, url_prefix="/qa")
    app.register_blueprint(sla_bp)
    app.register_blueprint(reports_bp)  # /portal/reports..., /reports/operations
    app.register_blueprint(reports_api_bp)  # /api/v1/reports/sla(.pdf)
    app.register_blueprint(integrations_bp)  # /intake/triage, /integrations, /dl/<token>
    app.register_blueprint(webhooks_bp, url_prefix="/portal/webhooks")


def _register_cli(app: Flask) -> None:
    from .cli import register

    register(app)
