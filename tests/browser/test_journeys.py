"""A day at the provider, end to end (issue #9): five journeys in a real browser.

1. A client user sends a COI request with a PDF, then uploads 200 tasks and watches the
   progress bar reach 100 %.
2. A team lead finds the new work on the board, bulk-assigns part of it, and is refused,
   with the reasons shown, when giving KPO work to a general specialist.
3. A specialist presses "Get next", works the SOP checklist, asks the client a question;
   the client answers in the portal; the specialist submits.
4. A QA reviewer scores a task from the QA queue with a critical failure: it goes back
   for rework and an escalation appears in the lead's queue.
5. A client reads the SLA dashboard and its chart and downloads the PDF; another
   client's user sees none of that client's data.

Each journey sets up what it needs inside the live stack (tests/browser/stack_setup.py),
so any one of them passes alone; run in this order they also tell one day's story (the
client's upload is the lead's new work). Screenshots go to
test-output/screenshots/journey-N-*/; three of them are the README's.
"""

from __future__ import annotations

import io
import re
import time

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests.browser.files import data_entry_csv, small_pdf
from tests.browser.stack_setup import JOURNEY_SPECIALIST as JOURNEY_EMAIL
from tests.browser.ui import (
    LEAD,
    NORTHSTAR_ADMIN,
    NORTHSTAR_USER,
    QA,
    SUMMIT_USER,
    Account,
    Shots,
    readme_screenshot,
)

pytestmark = pytest.mark.browser

RUN = time.strftime("%H%M%S")  # references unique to this run, e.g. J1-COI-071502
NORTHSTAR = "Northstar Insurance Agency"
JOURNEY_SPECIALIST = Account(JOURNEY_EMAIL, "specialist", "/work", "My work")
SLOW = 90_000  # ms: the worker's jobs on a busy 2-core machine


def nav(page: Page, name: str) -> None:
    """Follow a main-navigation link (its text may carry a count, e.g. "QA queue (3)")."""
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name=re.compile(rf"^{re.escape(name)}( \(\d+\))?$")).click()


def flash(page: Page, text: str | re.Pattern):
    return page.locator(".flash").filter(has_text=text)


# --- 1. client: a COI request with a PDF, then 200 tasks from a CSV -------------------------


def test_1_client_sends_a_coi_request_and_uploads_200_tasks(ui):
    shots = Shots("journey-1-client-intake")
    page = ui.page(NORTHSTAR_USER)
    page.goto("/portal/")
    nav(page, "Send a task")
    page.get_by_role("link", name=re.compile("Certificate of insurance")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Certificate of insurance (ACORD 25)")

    ref = f"J1-COI-{RUN}"
    page.get_by_label("Priority").select_option("high")
    page.get_by_label("Your reference").fill(ref)
    page.get_by_label("State").select_option("NY")
    page.get_by_label("Named insured").fill("Harbor Lights Bakery Inc.")
    page.get_by_label("Certificate holder name").fill("Hudson Property Management")
    page.get_by_label("Certificate holder address").fill("12 Pier Road, Albany NY 12207")
    page.get_by_label("Policy numbers (comma separated)").fill("GL-220981, AUTO-550172")
    lines = page.get_by_role("group", name=re.compile("Lines of coverage"))
    lines.get_by_label("GL").check()
    lines.get_by_label("AUTO").check()
    page.get_by_label("Additional insured requested").check()
    page.get_by_label(re.compile("^Attachments")).set_input_files({
        "name": "lease-schedule.pdf", "mimeType": "application/pdf",
        "buffer": small_pdf("Lease schedule: Hudson Property Management is additional insured"),
    })
    shots.take(page, "coi-form")
    page.get_by_role("button", name="Send task").click()

    expect(page).to_have_url(re.compile(r"/portal/tasks/\w+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(ref)
    expect(flash(page, "Task sent")).to_be_visible()
    documents = page.get_by_role("region", name="Documents")
    expect(documents.get_by_role("link", name="lease-schedule.pdf")).to_be_visible()
    shots.take(page, "coi-sent")

    nav(page, "Bulk uploads")
    page.get_by_role("link", name="Upload a CSV").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Upload many tasks from a CSV file")
    page.get_by_label("CSV file").set_input_files({
        "name": f"renewal-questionnaires-{RUN}.csv", "mimeType": "text/csv",
        "buffer": data_entry_csv(200, f"J1-DATA-{RUN}"),
    })
    page.get_by_role("button", name="Upload and check").click()

    expect(page).to_have_url(re.compile(r"/portal/imports/\w+$"))
    bar = page.get_by_role("progressbar")
    expect(bar).to_be_visible()
    shots.take(page, "upload-progress")
    # The page polls the job and updates the bar, then reloads once the job settles.
    expect(bar).to_have_js_property("max", 200, timeout=SLOW)
    expect(bar).to_have_js_property("value", 200, timeout=SLOW)
    expect(page.get_by_text("200 of 200 rows (100 %)")).to_be_visible()
    expect(flash(page, "200 tasks imported as one lot")).to_be_visible()
    shots.take(page, "upload-done")

    page.goto(f"/portal/tasks?external_ref=J1-DATA-{RUN}-200")
    expect(page.get_by_role("link", name=f"J1-DATA-{RUN}-200")).to_be_visible()


# --- 2. lead: the new work on the board, bulk assign, a refusal with reasons -----------------


def choose_specialist(page: Page, name: str) -> None:
    """Pick the bulk-assign form's specialist by name (the option also shows tier and load)."""
    select = page.get_by_role("combobox", name="Specialist", exact=True)
    value = select.locator("option", has_text=f"{name} —").get_attribute("value")
    select.select_option(value)


def filter_board(page: Page, **choices: str) -> None:
    form = page.get_by_role("form", name="Filter tasks")
    for label, value in choices.items():  # a wrapping label's name runs on into the options
        form.get_by_label(re.compile(rf"^{label.capitalize()}\b")).select_option(value)
    form.get_by_role("button", name="Filter").click()


def test_2_lead_bulk_assigns_new_work_and_is_refused_kpo_for_general_staff(ui, live):
    kpo_ref = f"J2-KPO-{RUN}"
    live.setup("unassignable_kpo_task", client="NORTHSTAR", ref=kpo_ref)
    live.wait_for_assignment()
    live.setup("ensure_backlog", client="NORTHSTAR", minimum=10, ref_prefix=f"J2-DATA-{RUN}")
    live.wait_for_assignment()  # the batch must not take a task the lead has ticked

    shots = Shots("journey-2-lead-board")
    page = ui.page(LEAD)
    page.goto("/board")
    # The queues: one row per client; its link opens that client's queues per task type.
    expect(page.get_by_role("rowheader", name="NORTHSTAR", exact=True)).to_be_visible()
    readme_screenshot(page, "lead-board")
    shots.take(page, "board")
    page.get_by_role("rowheader", name="NORTHSTAR", exact=True).get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"client=NORTHSTAR"))
    expect(page.get_by_role("rowheader", name="DATA", exact=True)).to_be_visible()
    shots.take(page, "board-northstar-queues")

    filter_board(page, client="NORTHSTAR", type="DATA", status="queued", assignee="none")
    expect(page).to_have_url(re.compile(r"client=NORTHSTAR.*type=DATA.*status=queued"))
    tasks = page.get_by_role("table").filter(has=page.get_by_role("checkbox"))
    boxes = tasks.get_by_role("checkbox")
    picked = [boxes.nth(i).get_attribute("aria-label").removeprefix("Select ")
              for i in range(3)]
    for i in range(3):
        boxes.nth(i).check()
    choose_specialist(page, "Specialist 02")
    page.get_by_label(re.compile("Override soft rules")).check()
    page.get_by_label("Reason", exact=True).fill("Clearing Northstar's upload before noon.")
    shots.take(page, "bulk-assign-ticked")
    page.get_by_role("button", name="Assign selected").click()

    expect(flash(page, "Assigned 3 task(s).")).to_be_visible()
    expect(page).to_have_url(re.compile(r"status=queued"))  # back on the same filtered view
    for ref in picked:
        expect(page.get_by_role("link", name=f"DATA {ref}", exact=True)).to_have_count(0)
    shots.take(page, "bulk-assigned")

    filter_board(page, type="ENDT_COV")
    expect(page).to_have_url(re.compile(r"type=ENDT_COV"))
    page.get_by_role("checkbox", name=f"Select {kpo_ref}").check()
    choose_specialist(page, "Specialist 01")  # general tier
    page.get_by_role("button", name="Assign selected").click()

    refusal = flash(page, kpo_ref)
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("cannot be overridden")
    expect(refusal).to_contain_text("ENDT_COV is KPO work: insurance-trained staff only.")
    expect(refusal).to_contain_text("licence")
    expect(page.get_by_role("checkbox", name=f"Select {kpo_ref}")).to_be_visible()  # still queued
    shots.take(page, "kpo-refused")


# --- 3. specialist: Get next, checklist, a question the client answers, submit --------------


def test_3_specialist_gets_next_asks_the_client_and_submits(ui, live):
    live.wait_for_assignment()  # no assignment run may fill her capacity before "Get next"
    person = live.setup("journey_specialist", client="NORTHSTAR", available=True)
    ui.authenticator.learn(JOURNEY_SPECIALIST.email, person["totp_key"])

    shots = Shots("journey-3-specialist")
    page = ui.page(JOURNEY_SPECIALIST)
    page.goto("/work")
    expect(page.get_by_label("My availability")).to_have_value("available")
    shots.take(page, "my-work")
    page.get_by_role("button", name="Get next").click()

    expect(page).to_have_url(re.compile(r"/work/tasks/\w+$"))
    expect(flash(page, "You have a new task.")).to_be_visible()
    expect(page.get_by_text("NORTHSTAR", exact=False).first).to_be_visible()
    public_id = page.url.rsplit("/", 1)[-1]
    heading = page.get_by_role("heading", level=1).inner_text()
    shots.take(page, "claimed")

    page.get_by_role("button", name="Start work").click()
    expect(flash(page, "Work started.")).to_be_visible()
    checklist = page.get_by_role("region", name=re.compile("SOP checklist"))
    steps = checklist.get_by_role("button", name=re.compile(r"^Tick step \d+$")).count()
    assert steps > 0, "the SOP has no steps to tick"
    for n in range(1, steps + 1):
        checklist.get_by_role("button", name=f"Tick step {n}").click()
        expect(checklist.get_by_role("button", name=f"Untick step {n}")).to_be_visible()
    output = page.get_by_label(re.compile("^Completed document"))
    if output.count():  # COI, endorsements and loss runs are delivered as a document
        output.set_input_files({"name": "completed.pdf", "mimeType": "application/pdf",
                                "buffer": small_pdf(f"Completed work for {heading}")})
        page.get_by_role("button", name="Attach").click()
        expect(page.get_by_role("link", name="completed.pdf")).to_be_visible()

    question = "Which certificate holder address should the document show: Albany or Troy?"
    page.get_by_label("Question for the client").fill(question)
    page.get_by_role("button", name="Send question").click()
    expect(flash(page, "Question sent to the client")).to_be_visible()
    expect(page.get_by_text("pending client").first).to_be_visible()
    shots.take(page, "question-sent")

    client = ui.page(NORTHSTAR_USER)
    client.goto(f"/portal/tasks/{public_id}")
    ask = client.get_by_role("region", name="We need information from you")
    expect(ask).to_contain_text(question)
    shots.take(client, "client-sees-question")
    ask.get_by_label("Your answer").fill("Albany: 12 Pier Road, Albany NY 12207.")
    ask.get_by_role("button", name="Send answer and resume work").click()
    expect(client.get_by_role("region", name="We need information from you")).to_have_count(0)
    expect(client.get_by_text("Albany: 12 Pier Road").first).to_be_visible()
    shots.take(client, "client-answered")

    page.reload()
    expect(page.get_by_text("Albany: 12 Pier Road").first).to_be_visible()
    expect(page.get_by_text("in progress").first).to_be_visible()
    readme_screenshot(page, "specialist-workspace")
    shots.take(page, "answer-received")
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(flash(page, "Submitted.")).to_be_visible()
    expect(page.get_by_text("in qa").first).to_be_visible()  # her first tasks are all reviewed
    shots.take(page, "submitted")


# --- 4. QA: a critical failure sends the task to rework and escalates it --------------------


def test_4_qa_critical_failure_sends_to_rework_and_escalates(ui, live):
    ref = f"J4-COI-{RUN}"
    task = live.setup("task_in_qa", client="NORTHSTAR", ref=ref)
    assert task["status"] == "in_qa", task

    shots = Shots("journey-4-qa")
    page = ui.page(QA)
    page.goto("/qa/")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=ref, exact=True))
    expect(row).to_contain_text("first 20 tasks of this type")
    shots.take(page, "qa-queue")
    row.get_by_role("button", name="Claim for review").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("^Review"))
    items = page.get_by_role("group").filter(has=page.get_by_role("radio", name="Pass"))
    critical = items.filter(has_text="critical")
    assert critical.count() > 0, "the scorecard has no critical item"
    for i in range(items.count()):
        items.nth(i).get_by_role("radio", name="Pass").check()
    failing = critical.first
    failing.get_by_role("radio", name="Fail").check()
    failing.get_by_label("Error category (if it fails)").select_option(index=1)
    failing.get_by_label("Comment").fill("Holder name differs from the request.")
    page.get_by_label("Overall comments").fill("Critical: wrong certificate holder.")
    shots.take(page, "scorecard")
    page.get_by_role("button", name="Save review").click()

    expect(flash(page, re.compile(r"Review saved: 0%, fail - sent to rework"))).to_be_visible()
    expect(page.get_by_role("link", name=ref, exact=True)).to_have_count(0)
    shots.take(page, "reviewed")

    lead = ui.page(LEAD)
    lead.goto("/escalations")
    lead.get_by_label("Reason").select_option("qa_critical_fail")
    lead.get_by_role("button", name="Filter").click()
    escalation = lead.get_by_role("row").filter(
        has=lead.get_by_role("link", name=ref, exact=True))
    expect(escalation).to_contain_text("qa critical fail")
    shots.take(lead, "escalation-queue")
    lead.goto(f"/board/tasks/{task['public_id']}")
    expect(lead.get_by_text("rework").first).to_be_visible()
    shots.take(lead, "task-in-rework")


# --- 5. client: SLA dashboard and PDF; another client sees none of it ------------------------


def test_5_client_reads_sla_dashboard_and_pdf_another_client_sees_nothing(ui):
    shots = Shots("journey-5-sla")
    page = ui.page(NORTHSTAR_ADMIN)
    page.goto("/portal/")
    nav(page, "SLA reports")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"SLA performance — {NORTHSTAR}")
    expect(page.get_by_text(re.compile(r"SLA attainment \(target"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"\d+ received"))).to_be_visible()
    chart = page.get_by_role("img", name="SLA attainment by week against the target")
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.complete && img.naturalWidth > 0"), "chart not drawn"
    readme_screenshot(page, "client-sla-dashboard")
    shots.take(page, "dashboard")

    with page.expect_download() as download:
        page.get_by_role("link", name="PDF", exact=True).click()
    pdf = download.value.path().read_bytes()
    assert pdf.startswith(b"%PDF-"), pdf[:20]
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert NORTHSTAR in text

    page.goto("/portal/tasks")
    first = page.get_by_role("table").get_by_role("link").first
    reference = first.inner_text()
    first.click()
    expect(page).to_have_url(re.compile(r"/portal/tasks/\w+$"))
    task_url = page.url
    public_id = task_url.rsplit("/", 1)[-1]

    other = ui.page(SUMMIT_USER)
    response = other.goto(task_url)
    assert response is not None and response.status == 404
    expect(other.get_by_text(reference)).to_have_count(0)
    assert other.request.get(f"/api/v1/tasks/{public_id}").status == 404
    shots.take(other, "other-client-404")
    other.goto(f"/portal/tasks?external_ref={reference}")
    expect(other.get_by_role("link", name=reference)).to_have_count(0)
    other.goto("/portal/")
    expect(other.get_by_text(reference)).to_have_count(0)
    nav(other, "SLA reports")
    expect(other.get_by_role("heading", level=1)).to_have_text(
        "SLA performance — Summit Mutual Carrier")
    expect(other.get_by_text(NORTHSTAR)).to_have_count(0)
    shots.take(other, "other-client-report")
