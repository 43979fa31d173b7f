"""axe-core on each main page, at 1280 px and on a 390 px phone.

A page passes when axe reports no violation of impact serious or critical and
nothing scrolls sideways on the phone. Every page's verdict is printed in the
run's summary and screenshots of both widths go to
test-output/screenshots/accessibility/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.browser.ui import (
    ADMIN,
    DESKTOP,
    LEAD,
    NORTHSTAR_USER,
    PHONE,
    QA,
    SPECIALIST,
    Account,
    Shots,
    after_resize,
    blocking,
    describe,
    overflowing_elements,
    page_overflows,
    run_axe,
)

pytestmark = pytest.mark.browser


def open_first_task(page: Page) -> None:
    page.goto("/portal/tasks")
    page.get_by_role("table").get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/portal/tasks/[\w-]+$"))


def submit_empty_sign_in(page: Page) -> None:
    page.goto("/login")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("E-mail")).to_have_attribute("aria-invalid", "true")


def open_first_held_task(page: Page) -> None:
    page.goto("/work")
    page.get_by_role("table").get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/work/tasks/[\w-]+$"))


def open_first_board_task(page: Page) -> None:
    page.goto("/board?status=queued")
    queued = page.get_by_role("row").filter(has=page.get_by_role("checkbox"))
    queued.first.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/board/tasks/[\w-]+$"))


@dataclass(frozen=True)
class MainPage:
    name: str
    account: Account | None
    path: str = ""
    reach: Callable[[Page], None] | None = None  # for pages without a fixed URL

    def open(self, page: Page) -> None:
        if self.reach:
            self.reach(page)
        else:
            page.goto(self.path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()


# Signs in only here, so its MFA set-up is seen by this test alone.
MFA_PERSON = Account("lead.qa@throughline.test", "team_lead", "/board", "Team board")
MAIN_PAGES = [
    MainPage("sign-in", None, "/login"),
    MainPage("sign-in-errors", None, reach=submit_empty_sign_in),
    MainPage("admin-home", ADMIN, "/admin"),
    MainPage("lead-board", LEAD, "/board"),
    MainPage("board-task", LEAD, reach=open_first_board_task),
    MainPage("escalations", LEAD, "/escalations"),
    MainPage("my-work", SPECIALIST, "/work"),
    MainPage("workspace", SPECIALIST, reach=open_first_held_task),
    MainPage("qa-queue", QA, "/qa/"),
    MainPage("portal-home", NORTHSTAR_USER, "/portal/"),
    MainPage("portal-tasks", NORTHSTAR_USER, "/portal/tasks"),
    MainPage("portal-task-detail", NORTHSTAR_USER, reach=open_first_task),
    MainPage("portal-send-coi", NORTHSTAR_USER, "/portal/tasks/new/COI"),
    MainPage("portal-bulk-upload", NORTHSTAR_USER, "/portal/imports/new"),
    MainPage("portal-sla-dashboard", NORTHSTAR_USER, "/portal/reports"),
    MainPage("not-found", NORTHSTAR_USER, "/portal/tasks/no-such-task"),
]


@pytest.fixture(scope="module")
def shots() -> Shots:
    return Shots("accessibility")


def check_both_widths(page: Page, name: str, shots: Shots, log: list[str]) -> list[str]:
    """axe at 1280 px and 390 px, screenshots of both; the problems found, if any."""
    failures = []
    for label, viewport in (("1280", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(viewport)
        after_resize(page)
        result = run_axe(page)
        shots.take(page, f"{name}-{label}")
        serious = blocking(result)
        overflow = page_overflows(page)
        others = sorted({f"{v['id']}({v['impact']})" for v in result["violations"]}
                        - {f"{v['id']}({v['impact']})" for v in serious})
        log.append(
            f"{name:20} {label:>4} px  serious/critical: {len(serious)}"
            f"  minor/moderate: {', '.join(others) or 'none'}"
            f"  sideways scroll: {overflow} px"
        )
        if serious:
            failures.append(f"{name} at {label} px: {describe(serious)}")
        if overflow and viewport is PHONE:
            culprits = ", ".join(overflowing_elements(page))
            failures.append(
                f"{name} at {label} px: the page scrolls sideways by {overflow} px ({culprits})"
            )
    return failures


@pytest.mark.parametrize("main_page", MAIN_PAGES, ids=lambda p: p.name)
def test_no_serious_accessibility_violations(ui, shots, accessibility_log, main_page: MainPage):
    page = ui.page(main_page.account, viewport=DESKTOP, axe=True)
    main_page.open(page)
    failures = check_both_widths(page, main_page.name, shots, accessibility_log)
    assert not failures, "\n".join(failures)


def test_sign_in_steps_have_no_serious_violations(ui, live, shots, accessibility_log):
    """The MFA set-up, recovery-code and code pages every provider person meets."""
    failures: list[str] = []
    steps: list[str] = []

    def check(page: Page, step: str) -> None:
        steps.append(step)
        failures.extend(check_both_widths(page, step, shots, accessibility_log))

    live.flask("reset-mfa", "--email", MFA_PERSON.email)  # sets up again at next sign-in
    ui.sign_in(ui.page(axe=True), MFA_PERSON, on_step=check)
    ui.sign_in(ui.page(axe=True), MFA_PERSON, on_step=check)
    assert steps == ["mfa-set-up", "recovery-codes", "mfa-code"]
    assert not failures, "\n".join(failures)
