"""Deny-by-default access rules and per-client scoping.

Every view declares who may call it with one of the decorators below; a
``before_request`` hook refuses any endpoint without a declared rule, so a
new route is closed until someone decides who may use it. Queries on client
data go through ``scoped``/``get_scoped_or_404`` so a foreign id answers 404.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, jsonify, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import Select, select

from .extensions import db
from .vocab import CLIENT_ROLES, PROVIDER_ROLES, Role

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class AccessRule:
    """public: anyone; login: any signed-in user; roles: any of ``roles``; api: token."""

    kind: str
    roles: frozenset[Role] = frozenset()


def _mark(rule: AccessRule) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        view._access = rule  # type: ignore[attr-defined]
        return view

    return decorate


def public(view: F) -> F:
    return _mark(AccessRule("public"))(view)


def login_required(view: F) -> F:
    return _mark(AccessRule("login"))(view)


def roles_required(*roles: Role | str) -> Callable[[F], F]:
    return _mark(AccessRule("roles", frozenset(Role(r) for r in roles)))


def provider_only(view: F) -> F:
    return roles_required(*PROVIDER_ROLES)(view)


def client_only(view: F) -> F:
    return roles_required(*CLIENT_ROLES)(view)


def api_route(*roles: Role | str) -> Callable[[F], F]:
    """A JSON API route: a client's bearer token, or a client user's session."""
    allowed = frozenset(Role(r) for r in roles) if roles else frozenset(CLIENT_ROLES)
    return _mark(AccessRule("api", allowed))


def rule_for(endpoint: str | None, app: Flask | None = None) -> AccessRule | None:
    app = app or current_app
    if endpoint is None:
        return None
    if endpoint == "static" or endpoint.endswith(".static"):
        return AccessRule("public")
    view = app.view_functions.get(endpoint)
    return getattr(view, "_access", None)


def _deny(status: int, message: str):
    from .audit import record

    record(
        "access.denied",
        object_type="route",
        reason=f"{request.method} {request.path}: {message}",
        client_id=getattr(current_user, "client_id", None) if current_user else None,
    )
    db.session.commit()
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        response = jsonify(error=message)
        response.status_code = status
        return response
    abort(status)


def enforce_access():
    """before_request hook: apply the endpoint's declared rule (deny by default)."""
    if request.endpoint is None:
        return None  # 404/405 handled by Flask
    rule = rule_for(request.endpoint)
    if rule is None:
        current_app.logger.error("endpoint %s has no access rule; denied", request.endpoint)
        return _deny(403, "forbidden")
    if rule.kind == "public":
        return None
    if rule.kind == "api":
        from client_portal.api_auth import authenticate_api

        return authenticate_api(rule.roles)
    if not current_user.is_authenticated:
        if request.path.startswith("/api/"):
            return _deny(401, "authentication required")
        return redirect(url_for("auth.login", next=request.full_path))
    if rule.kind == "roles" and not current_user.has_role(*rule.roles):
        return _deny(403, "your role does not allow this page")
    return None


# --- client scoping ---------------------------------------------------------


def visible_client_ids(user=None) -> frozenset[int] | None:
    """Client ids the caller may see; None means every client (provider admin)."""
    client_id = g.get("api_client_id")
    if client_id is not None:
        return frozenset({client_id})
    user = user or current_user
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    if user.client_id is not None:
        return frozenset({user.client_id})
    if user.has_role(Role.ADMIN):
        return None
    profile = user.staff_profile
    return profile.allowed_client_ids if profile is not None else None


def current_client_id() -> int:
    """The caller's own client (client users and API tokens only)."""
    client_id = g.get("api_client_id")
    if client_id is None and getattr(current_user, "is_authenticated", False):
        client_id = current_user.client_id
    if client_id is None:
        abort(403)
    return client_id


def scoped(stmt: Select, model: type, user=None) -> Select:
    """Restrict a SELECT on a client-owned model to the caller's clients."""
    ids = visible_client_ids(user)
    if ids is None:
        return stmt
    return stmt.where(model.client_id.in_(ids))


def get_scoped_or_404(model: type, public_id: str, *, options: Iterable = ()):
    """Load one client-owned row by public id, or 404 if it is not the caller's."""
    stmt = scoped(select(model).where(model.public_id == public_id), model)
    for option in options:
        stmt = stmt.options(option)
    obj = db.session.scalar(stmt)
    if obj is None:
        abort(404)
    return obj


def init_app(app: Flask) -> None:
    app.before_request(enforce_access)
