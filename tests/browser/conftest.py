"""Browser-test fixtures: one live stack and one Chromium per run, a fresh context per page.

``live``     the app served on loopback by gunicorn, an RQ worker, demo data (session);
``browser``  Debian's Chromium driven by Playwright (session);
``ui``       opens pages, signed in or not, and remembers them so a failure can be
             saved as a screenshot and the page's HTML under test-output/failures/.

The tests skip, with the reason, only when Chromium or Playwright is missing;
``scripts/browser_deps.sh`` installs both.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser import live_stack
from tests.browser.ui import DESKTOP, OUTPUT, Account, Authenticator, Step, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ACCESSIBILITY_RESULTS = pytest.StashKey[list[str]]()
STACK_TIMINGS = pytest.StashKey[dict[str, float]]()


def missing_requirement() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (scripts/browser_deps.sh installs Debian's chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (scripts/browser_deps.sh installs it)"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.stash[ACCESSIBILITY_RESULTS] = []


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    shutil.rmtree(OUTPUT / "failures", ignore_errors=True)  # only this run's failures

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def live(browser: Browser, request: pytest.FixtureRequest) -> Iterator[live_stack.LiveStack]:
    """Started after ``browser`` so a machine without Chromium starts no server."""
    workdir = Path(tempfile.mkdtemp(prefix="throughline-browser-"))
    try:
        stack = live_stack.start(workdir, OUTPUT / "live")
        request.config.stash[STACK_TIMINGS] = stack.timings
        yield stack
        stack.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Ui:
    """Opens browser contexts for one test and signs them in (once per account per run)."""

    def __init__(self, browser: Browser, stack: live_stack.LiveStack,
                 signed_in: dict[str, Any], authenticator: Authenticator) -> None:
        self.browser = browser
        self.stack = stack
        self.signed_in = signed_in
        self.authenticator = authenticator
        self.contexts: list[BrowserContext] = []
        self.problems: list[str] = []

    def page(self, account: Account | None = None, viewport: dict | None = None,
             axe: bool = False) -> Page:
        """A new page, signed in as ``account`` when given.

        The first page for an account signs in through the form; later ones reuse
        its cookies, so each demo person signs in once per run. ``axe=True`` lets
        the accessibility tool be injected despite the app's CSP.
        """
        state = self.signed_in.get(account.email) if account else None
        context = self.browser.new_context(
            base_url=self.stack.base_url,
            viewport=viewport or DESKTOP,
            bypass_csp=axe,
            storage_state=state,
        )
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        page.on("console", self._console)
        if account and state is None:
            self.sign_in(page, account)
        return page

    def sign_in(self, page: Page, account: Account, on_step: Step | None = None) -> None:
        """Sign in through the form and keep the cookies for later pages of this account."""
        sign_in(page, self.stack, account, self.authenticator, on_step)
        self.signed_in[account.email] = page.context.storage_state()

    def _console(self, message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(f"CSP violation: {message.text}")

    def save_failure(self, name: str) -> list[Path]:
        """Screenshot and HTML of every page still open, for the failure report."""
        directory = OUTPUT / "failures"
        directory.mkdir(parents=True, exist_ok=True)
        saved = []
        pages = [p for c in self.contexts for p in c.pages if not p.is_closed()]
        for index, page in enumerate(pages, 1):
            stem = directory / f"{name}-{index}"
            try:
                page.screenshot(path=f"{stem}.png", full_page=True)
                Path(f"{stem}.html").write_text(page.content())
            except Exception as exc:  # a crashed page must not hide the real failure
                Path(f"{stem}.txt").write_text(f"could not save {page.url}: {exc}")
            saved.append(stem)
        return saved

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture(scope="session")
def signed_in_states() -> dict[str, Any]:
    """Cookies of each account after its first sign-in, by e-mail."""
    return {}


@pytest.fixture(scope="session")
def authenticator(live: live_stack.LiveStack) -> Authenticator:
    phone = Authenticator()
    phone.learn_printed_keys(live.seed_output)
    return phone


@pytest.fixture
def ui(browser: Browser, live: live_stack.LiveStack, signed_in_states: dict[str, Any],
       authenticator: Authenticator) -> Iterator[Ui]:
    session = Ui(browser, live, signed_in_states, authenticator)
    yield session
    session.close()
    assert not session.problems, "\n".join(session.problems)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    session = getattr(item, "funcargs", {}).get("ui")
    if report.when == "call" and report.failed and isinstance(session, Ui):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid.split("::", 1)[-1])
        saved = session.save_failure(name)
        report.sections.append(
            ("browser artefacts", "\n".join(f"{stem}.png / .html" for stem in saved))
        )


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    timings = config.stash.get(STACK_TIMINGS, {})
    if timings:
        terminalreporter.section("browser-test stack start-up")
        terminalreporter.write_line("  ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    lines = config.stash.get(ACCESSIBILITY_RESULTS, [])
    if lines:
        terminalreporter.section("accessibility (axe-core, per page and width)")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def accessibility_log(request: pytest.FixtureRequest) -> list[str]:
    """Lines for the end-of-run accessibility summary."""
    return request.config.stash[ACCESSIBILITY_RESULTS]
