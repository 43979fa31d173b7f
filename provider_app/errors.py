"""Error pages for people and JSON errors for the API, in the shape PRODUCT.md fixes."""

from __future__ import annotations

import time

from flask import Flask, jsonify, make_response, render_template, request
from flask_limiter import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException

from .extensions import db, limiter
from .lifecycle import TransitionError


def wants_json() -> bool:
    return request.path.startswith("/api/") or (
        request.accept_mimetypes.best == "application/json"
    )


def json_error(status: int, message: str, errors: dict | None = None):
    body: dict = {"error": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        db.session.rollback()
        if wants_json():
            return json_error(exc.code or 500, exc.description or exc.name)
        return render_template("error.html", error=exc), exc.code

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded):
        """429 with ``Retry-After`` (seconds to the end of the window). Only refusals read
        the window: success headers would cost two Redis round trips on every API call."""
        response = make_response(_http(exc))
        limit = limiter.current_limit
        if limit is not None:
            response.headers["Retry-After"] = str(max(1, int(limit.reset_at - time.time())))
        return response

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        db.session.rollback()
        if wants_json():
            return json_error(400, "missing or invalid CSRF token")
        return render_template("error.html", error=exc), 400

    @app.errorhandler(TransitionError)
    def _transition(exc: TransitionError):
        db.session.rollback()
        if wants_json():
            return json_error(409, str(exc))
        return render_template("error.html", error=exc, title="Not allowed now"), 409

    @app.errorhandler(StaleDataError)
    def _stale(exc: StaleDataError):
        db.session.rollback()
        message = "Someone else changed this record while you were working; reload and retry."
        if wants_json():
            return json_error(409, message)
        return render_template("error.html", error=message, title="Conflict"), 409
