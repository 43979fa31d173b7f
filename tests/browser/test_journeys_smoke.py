"""Phase-1 journeys in a real browser: every demo role signs in and lands on its home page,
a person signs out, a wrong password is explained, one client cannot open another's task,
and a wide table stays usable by keyboard on a phone.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.ui import (
    EVERY_ROLE,
    NORTHSTAR_USER,
    PHONE,
    PINECREST_USER,
    SUMMIT_USER,
    Account,
    Shots,
    page_overflows,
)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("account", EVERY_ROLE, ids=lambda a: a.role)
def test_sign_in_lands_on_home_page(ui, live, account: Account):
    shots = Shots(f"sign-in-{account.role}")
    page = ui.page()
    page.goto("/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    shots.take(page, "sign-in")

    ui.sign_in(page, account)

    expect(page).to_have_url(live.url(account.home))
    expect(page.get_by_role("heading", level=1)).to_have_text(account.heading)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.locator('[aria-current="page"]')).to_have_count(1)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    shots.take(page, "home")


def test_wrong_password_is_explained_at_the_field(ui):
    shots = Shots("sign-in-refused")
    page = ui.page()
    page.goto("/login")
    page.get_by_label("E-mail").fill("nobody@throughline.test")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()

    password = page.get_by_label("Password")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_accessible_description("Wrong e-mail or password.")
    expect(page.get_by_label("E-mail")).to_have_value("nobody@throughline.test")
    shots.take(page, "refused")


def test_sign_out_ends_the_session(ui, live):
    shots = Shots("sign-out")
    page = ui.page(PINECREST_USER)
    page.goto("/portal/")
    expect(page.get_by_role("heading", level=1)).to_have_text(PINECREST_USER.heading)

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(live.url("/login"))
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    shots.take(page, "signed-out")
    page.goto("/portal/tasks")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def test_client_reads_own_tasks_and_cannot_open_anothers(ui, live):
    shots = Shots("client-tasks")
    page = ui.page(NORTHSTAR_USER)
    page.goto("/portal/")
    shots.take(page, "portal-home")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    expect(page).to_have_url(live.url("/portal/tasks"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Tasks")
    shots.take(page, "task-list")

    first = page.get_by_role("table").get_by_role("link").first
    reference = first.inner_text()
    first.click()
    expect(page).to_have_url(re.compile(r"/portal/tasks/[\w-]+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(reference)
    shots.take(page, "task-detail")
    northstar_task = page.url

    other = ui.page(SUMMIT_USER)
    response = other.goto(northstar_task)
    assert response is not None and response.status == 404
    expect(other.get_by_role("heading", level=1)).to_have_text("Not Found")
    expect(other.get_by_text(reference)).to_have_count(0)
    shots.take(other, "other-client-404")


def test_a_wide_table_scrolls_by_keyboard_on_a_phone(ui):
    shots = Shots("phone-table")
    page = ui.page(NORTHSTAR_USER, viewport=PHONE)
    page.goto("/portal/tasks")
    box = page.get_by_role("region", name=re.compile(r"scrolls sideways"))
    expect(box).to_be_visible()
    assert page_overflows(page) == 0

    box.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("box => box.scrollLeft > 0", arg=box.element_handle())
    shots.take(page, "scrolled")
