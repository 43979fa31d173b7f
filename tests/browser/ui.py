"""What journeys are written with: the demo people, signing in, screenshots, the axe check.

Journeys find things the way a person does (labels, roles, headings, URLs), so
pages can be restyled under them. Signing in lives in one function,
``sign_in``; the one-time-code step (provider staff must use TOTP) in
``second_factor`` and ``Authenticator``: when sign-in changes, that is where.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyotp

from provider_app.demo import DEMO_PASSWORD
from tests.browser.live_stack import ROOT, LiveStack

if TYPE_CHECKING:
    from playwright.sync_api import Page

OUTPUT = ROOT / "test-output"
AXE_JS = ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
README_VIEWPORT = {"width": 1280, "height": 800}
README_SHOTS = ROOT / "docs" / "screenshots"
BLOCKING_IMPACTS = ("serious", "critical")


@dataclass(frozen=True)
class Account:
    """A demo login (from ``seed-demo``) and where signing in should land."""

    email: str
    role: str
    home: str  # path of the home page
    heading: str  # its level-1 heading


ADMIN = Account("admin@throughline.test", "admin", "/admin", "Administration")
LEAD = Account("lead@throughline.test", "team_lead", "/board", "Team board")
SPECIALIST = Account("specialist01@throughline.test", "specialist", "/work", "My work")
QA = Account("qa@throughline.test", "qa_reviewer", "/qa/", "QA queue")
NORTHSTAR_ADMIN = Account(
    "admin@northstar.test", "client_admin", "/portal/", "Northstar Insurance Agency"
)
NORTHSTAR_USER = Account(
    "user@northstar.test", "client_user", "/portal/", "Northstar Insurance Agency"
)
SUMMIT_USER = Account("user@summit.test", "client_user", "/portal/", "Summit Mutual Carrier")
# Used only by the sign-out journey, so signing out never disturbs another test's session.
PINECREST_USER = Account(
    "user@pinecrest.test", "client_user", "/portal/", "Pinecrest Claims TPA"
)
EVERY_ROLE = [ADMIN, LEAD, SPECIALIST, QA, NORTHSTAR_ADMIN, NORTHSTAR_USER]


Step = Callable[["Page", str], None]


def sign_in(page: Page, stack: LiveStack, account: Account, authenticator: Authenticator,
            on_step: Step | None = None) -> None:
    """Sign in through the form, as a person does, and wait to leave the sign-in pages.

    ``on_step(page, name)`` is called on each page between the password and the home
    page ("mfa-set-up", "recovery-codes", "mfa-code"), e.g. to check or photograph it.
    """
    page.goto(stack.url("/login"))
    page.get_by_label("E-mail").fill(account.email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    second_factor(page, stack, account, authenticator, on_step or (lambda page, name: None))
    if re.search(r"/login(/\w+)?(\?|$)", page.url):
        raise AssertionError(f"{account.email} could not sign in: {page.url}")


def second_factor(page: Page, stack: LiveStack, account: Account,
                  authenticator: Authenticator, on_step: Step) -> None:
    """Set up or answer the one-time-code step, when the app asks for one.

    Provider staff must use TOTP. The step is recognised by the HTML standard hint
    ``autocomplete="one-time-code"``; a set-up page also shows the key as an
    ``otpauth://`` link, which the harness's authenticator learns, as a person's
    phone would. Without the step there is nothing to do.
    """
    code_field = page.locator('input[autocomplete="one-time-code"]')
    if code_field.count() == 0:
        return
    setup_link = page.locator('input[value^="otpauth://"]')
    enrolling = setup_link.count() > 0
    on_step(page, "mfa-set-up" if enrolling else "mfa-code")
    if enrolling:
        authenticator.learn(account.email, setup_link.first.input_value())
    code_field.fill(authenticator.code(account.email, stack))
    with page.expect_navigation():
        code_field.press("Enter")
    if enrolling:  # recovery codes are shown once; a person stores them and goes on
        on_step(page, "recovery-codes")
        with page.expect_navigation():
            page.get_by_role("link", name="I have stored them").click()


class Authenticator:
    """The authenticator app of every demo person the tests sign in as.

    It learns keys as a person would: those ``seed-demo`` prints beside each
    provider login, and the one a set-up page shows. It never reuses a 30-second
    step (the app refuses a replayed step and accepts the next one early). For
    someone whose key it never saw, the code comes from the development-only CLI
    ``totp-code``, waiting for a fresh step when needed.
    """

    def __init__(self) -> None:
        self.keys: dict[str, pyotp.TOTP] = {}
        self.last_code: dict[str, str] = {}
        self.last_step: dict[str, int] = {}

    def learn(self, email: str, key: str) -> None:
        """``key`` is a base32 secret or an ``otpauth://`` link."""
        self.keys[email] = pyotp.parse_uri(key) if key.startswith("otpauth://") else pyotp.TOTP(key)

    def learn_printed_keys(self, text: str) -> None:
        """Keys from ``seed-demo``'s login lines: ``EMAIL  ROLE  SIDE  TOTP key KEY``."""
        for email, key in re.findall(r"^\s*(\S+@\S+)\s.*\bTOTP key ([A-Z2-7]+)\s*$", text, re.M):
            self.learn(email, key)

    def code(self, email: str, stack: LiveStack) -> str:
        totp = self.keys.get(email)
        if totp is None:
            return self._code_from_cli(email, stack)
        now_step = totp.timecode(time.time())
        step = max(now_step, self.last_step.get(email, now_step - 1) + 1)
        while step > now_step + 1:  # both accepted steps used: wait for the next one
            time.sleep(1)
            now_step = totp.timecode(time.time())
        self.last_step[email] = step
        return totp.generate_otp(step)

    def _code_from_cli(self, email: str, stack: LiveStack) -> str:
        deadline = time.monotonic() + 35
        while True:
            code = stack.flask("totp-code", "--email", email).strip().splitlines()[-1]
            if code != self.last_code.get(email) or time.monotonic() > deadline:
                self.last_code[email] = code
                return code
            time.sleep(1)


class Shots:
    """Numbered full-page screenshots of one journey: test-output/screenshots/<journey>/."""

    def __init__(self, journey: str) -> None:
        self.directory = OUTPUT / "screenshots" / journey
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.count = 0

    def take(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def readme_screenshot(page: Page, name: str) -> Path:
    """The README's picture of this page: the 1280 x 800 viewport (not the full page, so
    the PNG stays small), in test-output/screenshots/readme/, and in docs/screenshots/
    too when ``UPDATE_SCREENSHOTS=1`` (commit those to refresh the README)."""
    size = page.viewport_size
    page.set_viewport_size(README_VIEWPORT)
    after_resize(page)
    path = OUTPUT / "screenshots" / "readme" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(path), full_page=False, animations="disabled")
    finally:
        if size:
            page.set_viewport_size(size)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOTS / path.name)
    return path


def run_axe(page: Page) -> dict[str, Any]:
    """axe-core's verdict on the page as it is now (the page's context must bypass CSP).

    The app's Content-Security-Policy forbids inline scripts, rightly; the
    accessibility contexts are opened with ``bypass_csp`` so the tool can be injected.
    """
    if not AXE_JS.exists():
        raise AssertionError(f"{AXE_JS} is missing: run scripts/browser_deps.sh")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        tag = page.add_script_tag(path=str(AXE_JS))
        tag.evaluate("script => script.remove()")  # axe stays loaded; saved HTML stays small
    return page.evaluate(
        """() => axe.run(document, {resultTypes: ['violations']}).then(r => ({
            url: r.url,
            violations: r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5),
                count: v.nodes.length,
            })),
        }))"""
    )


def blocking(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in result["violations"] if v["impact"] in BLOCKING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{v['id']} ({v['impact']}, {v['count']}×: {v['help']}) at {', '.join(v['nodes'])}"
        for v in violations
    )


def after_resize(page: Page) -> None:
    """Let the page's resize handlers run (they run before the next animation frame)."""
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => done()))")


def page_overflows(page: Page) -> int:
    """Pixels the page is wider than the viewport (0 when nothing scrolls sideways)."""
    return page.evaluate(
        "() => Math.max(0, document.documentElement.scrollWidth - window.innerWidth)"
    )


def overflowing_elements(page: Page, limit: int = 3) -> list[str]:
    """The outermost elements that stick out past the right edge, to say what to fix."""
    return page.evaluate(
        """limit => {
            const width = window.innerWidth, found = [];
            for (const el of document.body.querySelectorAll('*')) {
                if (el.getBoundingClientRect().right <= width + 1) continue;
                if (found.some(f => f.contains(el))) continue;
                let clipped = false;  // inside a box that scrolls or clips: not the page's problem
                for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
                    if (getComputedStyle(up).overflowX !== 'visible') { clipped = true; break; }
                }
                const escapes = ['absolute', 'fixed'].includes(getComputedStyle(el).position);
                if (clipped && !escapes) continue;
                found.push(el);
                if (found.length === limit) break;
            }
            return found.map(el => el.tagName.toLowerCase()
                + (el.id ? '#' + el.id : '')
                + (el.className && typeof el.className === 'string'
                   ? '.' + el.className.trim().split(/\\s+/).join('.') : '')
                + ' (right edge ' + Math.round(el.getBoundingClientRect().right) + ' px)');
        }""",
        limit,
    )
