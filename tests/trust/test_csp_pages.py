"""Security headers on every response, and pages that work under the strict CSP.

The CSP allows no inline script or style, so a page relying on either would be
broken in a browser; this walks every parameterless GET page for each role.
"""

import re
import warnings

import pytest

from provider_app.security_headers import CSP
from provider_app.vocab import Role
from tests.factories import gen_client, gen_user

INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "inline <script>"),
    (re.compile(r"<style\b", re.I), "<style> element"),
    (re.compile(r"<[^>]+\sstyle=", re.I), "style= attribute"),
    (re.compile(r"<[^>]+\son[a-z]+=", re.I), "inline event handler"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]
SKIP = ("/api/", "/static/", "/logout", "/healthz", "/readyz", "/metrics")


def _pages(app) -> list[str]:
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments and not rule.rule.startswith(SKIP):
            paths.append(rule.rule)
    return sorted(set(paths))


def _problems(html: str) -> list[str]:
    return [label for pattern, label in INLINE if pattern.search(html)]


def test_security_headers_everywhere(client):
    for path in ("/login", "/password/forgot", "/api/v1/tasks", "/no-such-page"):
        headers = client.get(path).headers
        assert headers["Content-Security-Policy"] == CSP, path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP


@pytest.mark.parametrize("role", list(Role))
def test_every_page_works_under_the_csp(app, client, db, redis_conn, role):
    owner = gen_client() if role in (Role.CLIENT_ADMIN, Role.CLIENT_USER) else None
    client.login(gen_user(role, owner))
    db.session.commit()  # survives the rollback after a failing page
    failures = {}
    checked = 0
    for path in _pages(app):
        try:
            response = client.get(path)
        except Exception as exc:  # a broken page is its own area's test failure, not the CSP's
            warnings.warn(f"{path} failed for {role}: {exc!r}", stacklevel=1)
            db.session.rollback()
            continue
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        checked += 1
        if found := _problems(response.get_data(as_text=True)):
            failures[path] = found
    assert checked >= 3, "signed out half-way?"
    assert failures == {}, f"pages the CSP would break for {role}: {failures}"


def test_sign_in_pages_work_under_the_csp(client, redis_conn):
    user = gen_user(Role.TEAM_LEAD)
    client.post("/login", data={"email": user.email, "password": "correct horse battery"})
    for path in ("/login", "/login/enrol", "/password/forgot"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert _problems(response.get_data(as_text=True)) == [], path
