"""An editor's whole week in the console, in headless Chromium, through the pages only (issue 16
point 4): sign in, edit a comparison, draft the week's issue, reorder it, write the editor's note
in Markdown and see it in the preview frames, test send, schedule at a local time, send now after
the confirmation that states the recipient count, watch the progress page until all are sent
(a worker runs in-process against the same database), look a reader up and see the issue in
their ledger, and read the vote digest after that reader voted through their delivered link.

Locators are roles and labels, and the forms are submitted with the keyboard where an editor
would, so the test also proves the pages are operable that way. SQLite and PostgreSQL.
Screenshots at 375 px of the issue and progress pages go to /tmp/editor-week/ for a human eye.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from newsletter.db import session_scope
from newsletter.delivery.worker import run_worker
from newsletter.editors import accounts, audit
from newsletter.subscribers.models import Subscriber
from tests.web.conftest import live_factory  # noqa: F401  (fixture)

EMAIL, PASSWORD = "week@editors.example", "correct horse battery staple"
HAIKU = "claude-haiku-open-weights-vs-hugging-face-inference-providers-v2"
READERS = [("ada@readers.example", "Ada Lovelace"), ("grace@readers.example", "Grace Hopper"),
           ("linus@readers.example", "Linus Pauling")]
TAGLINE = "Open weights you can run on a laptop, this week's pick"
NOTE = "This week: *two surprises* and [our method](https://verdicts.example/method)."
SHOTS = Path("/tmp/editor-week")


def seed(live) -> None:
    """The world the editor walks into: their account and three confirmed readers."""
    with session_scope(live.engine) as session:
        accounts.add_editor(session, EMAIL, "editor", audit.Actor.cli(), password=PASSWORD)
        for email, name in READERS:
            session.add(Subscriber(email=email, name=name, status="active", confirmed_at=datetime.now(UTC)))


def shot(page, name: str, db: str) -> None:
    """A full-page 375 px screenshot, then the editor's viewport again."""
    SHOTS.mkdir(exist_ok=True)
    for frame in page.frames[1:]:  # the mail previews: each a full rendering of the issue
        frame.wait_for_load_state()
    size = page.viewport_size
    page.set_viewport_size({"width": 375, "height": 800})
    page.screenshot(path=str(SHOTS / f"{name}-{db}.png"), full_page=True)
    # A full-page capture leaves the sandboxed frames below the fold blank; each frame on its own:
    for number, frame in enumerate(page.locator("iframe").all()):
        frame.scroll_into_view_if_needed()
        frame.screenshot(path=str(SHOTS / f"{name}-{db}-frame{number}.png"))
    page.set_viewport_size(size)


def main_text(page) -> str:
    return page.inner_text("main")


def kicker(page) -> str:
    """The line above an issue's heading ("Issue 2026-W48 · draft"); CSS shows it in capitals."""
    return page.locator("main .kicker", has_text="Issue ").text_content()


def submit(page, locator) -> None:
    """Focus a control and press Enter, as a keyboard user does; wait for the next page."""
    locator.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")


def sign_in(page, live) -> None:
    page.goto(live.url + "/admin/issues")
    assert page.url == live.url + "/admin/login"  # not signed in yet
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_role("button", name=f"Sign out {EMAIL}")).to_be_visible()
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Comparisons").click()
    expect(page.get_by_role("heading", name="Comparisons", exact=True)).to_be_visible()


def edit_comparison(page, live) -> None:
    page.get_by_role("link", name=re.compile("Claude Haiku")).first.click()
    page.wait_for_url(f"{live.url}/admin/comparisons/{HAIKU}")
    tagline = page.get_by_role("group", name="Tool A", exact=True).get_by_label("Tagline")
    tagline.fill(TAGLINE)
    submit(page, tagline)
    assert page.url.endswith("?saved=1")
    assert page.get_by_role("status").inner_text() == "Saved."
    assert page.get_by_role("group", name="Tool A", exact=True).get_by_label("Tagline").input_value() == TAGLINE


def draft_week(page, live) -> int:
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Issues").click()
    week = page.get_by_label("Draft the issue of a week")
    week.fill("2026-W48")
    submit(page, week)
    assert page.get_by_role("status").inner_text() == "Drafted."
    assert kicker(page) == "Issue 2026-W48 · draft"
    return int(re.search(r"/admin/issues/(\d+)", page.url).group(1))


def titles(page) -> list[str]:
    listing = page.get_by_role("heading", name="Comparisons, in order").locator("xpath=..").locator("ol > li > strong")
    return listing.all_inner_texts()


def reorder(page) -> list[str]:
    before = titles(page)
    assert len(before) >= 2, before
    submit(page, page.get_by_role("button", name=f"Move down: {before[0]}"))
    assert page.get_by_role("status").inner_text() == "The comparisons are updated."
    after = titles(page)
    assert after == [before[1], before[0], *before[2:]]
    submit(page, page.get_by_role("button", name=f"Move up: {after[-1]}"))
    final = titles(page)
    assert final == [*after[:-2], after[-1], after[-2]]
    return final


def edit_note(page, order: list[str]) -> None:
    note = page.get_by_label("Editor's note")
    note.fill(NOTE)
    submit(page, page.get_by_role("button", name="Save", exact=True))
    assert page.get_by_role("status").inner_text() == "Saved."
    assert page.get_by_label("Editor's note").input_value() == NOTE
    frame = page.frame_locator("iframe[title='The mail on a phone, light mode']")
    emphasis = frame.locator("em", has_text="two surprises")
    emphasis.wait_for()
    link = frame.get_by_role("link", name="our method")
    assert link.get_attribute("href").startswith("https://verdicts.example/method")
    mail = frame.locator("body").inner_text()
    assert TAGLINE in mail  # the edited comparison is in the mail
    places = [mail.find(title) for title in order]
    assert -1 not in places and places == sorted(places), (order, places)  # in the new order


def outbox(live) -> list:
    folder = live.settings.mail.file.dir
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.glob("*.eml"))]


def send_a_test(page, live) -> None:
    to = page.get_by_label("Send a [TEST] copy to")
    assert to.input_value() == EMAIL  # the editor's own address by default
    to.fill("proofreader@editors.example")
    submit(page, to)
    assert "proofreader@editors.example" in page.get_by_role("status").inner_text()
    tests = [m for m in outbox(live) if m["To"].addresses[0].addr_spec == "proofreader@editors.example"]
    assert len(tests) == 1 and "[TEST]" in tests[0]["Subject"]


def schedule(page, live) -> str:
    zone = ZoneInfo(live.settings.site.timezone)
    when = (datetime.now(zone) + timedelta(days=2)).replace(hour=9, minute=30, second=0, microsecond=0)
    assert "Europe/Berlin" in page.get_by_label(re.compile("Send at")).evaluate("e => e.labels[0].textContent")
    at = page.get_by_label(re.compile("Send at"))
    at.fill(when.strftime("%Y-%m-%dT%H:%M"))
    # The sample week (2026-W48) is old news from 2026-12-07 on: the week check fails then, and
    # the editor overrides it as an editor of a late issue would (the form's own checkbox).
    page.get_by_label("Schedule even if a pre-send check fails").check()
    submit(page, page.get_by_role("button", name="Schedule", exact=True))
    assert page.get_by_role("status").inner_text() == "Scheduled."
    local = when.strftime("%Y-%m-%d 09:30")
    assert f"Scheduled for {local}" in main_text(page)
    assert kicker(page) == "Issue 2026-W48 · scheduled"
    return local


def send_now(page, live, recipients: int) -> None:
    page.get_by_role("link", name="Send this issue now…").click()
    expect(page.get_by_role("heading", name=re.compile("now\\?$"))).to_be_visible()
    assert f"to {recipients} readers now" in main_text(page)
    late = page.get_by_label("Send although checks fail")  # shown only while a check fails (the week)
    if late.count():
        late.check()
    submit(page, page.get_by_role("button", name=f"Send to {recipients} readers"))
    assert re.search(r"/admin/issues/\d+/progress$", page.url)


def figure(page, name: str) -> str:
    return page.locator(f"[data-field={name}]").inner_text()


def watch_send(page, live, recipients: int, db: str) -> None:
    """The progress page follows the send live while a worker in this process delivers it."""
    assert figure(page, "state") == "sending" and figure(page, "pending") == str(recipients)
    submit(page, page.get_by_role("button", name="Pause"))
    expect(page.get_by_role("status")).to_contain_text("Paused")
    submit(page, page.get_by_role("button", name="Resume"))
    notice = page.get_by_role("status")
    expect(notice).to_have_text("Sending again.")
    assert page.url.endswith("/progress")  # the notice is for this visit: a reload leaves it out
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(live.engine, live.settings),
                              kwargs={"until_idle": True, "echo": lambda _line: None, "stop": stop}, daemon=True)
    worker.start()
    try:
        # The figures change in place (the page's script follows /events); no reload here.
        expect(page.locator("[data-field=state]")).to_have_text("sent", timeout=30000)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert (figure(page, "sent"), figure(page, "failed"), figure(page, "pending")) == (str(recipients), "0", "0")
    expect(notice).to_be_hidden()  # "Sending again." is no longer true once the send is over
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()  # a finished send offers no controls
    expect(page.get_by_role("button", name="Cancel the send")).to_be_hidden()
    shot(page, "progress", db)
    page.get_by_role("link", name="Refresh the figures").click()  # the server's figures agree
    assert figure(page, "state") == "sent" and figure(page, "sent") == str(recipients)
    assert not page.get_by_role("button", name="Pause").count()
    assert not page.get_by_role("button", name="Cancel the send").count()


def look_reader_up(page, live) -> None:
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Readers").click()
    search = page.get_by_label("Address or name starts with")
    search.fill("ada")
    submit(page, search)
    assert "q=ada" in page.url
    rows = page.locator("tbody tr").all_inner_texts()
    assert len(rows) == 1 and "Ada Lovelace" in rows[0] and "active" in rows[0]
    page.get_by_role("link", name="ada@readers.example").click()
    expect(page.get_by_role("heading", name="ada@readers.example")).to_be_visible()
    ledger = page.get_by_role("region", name="Issues sent to this reader").locator("tbody tr").all_inner_texts()
    assert len(ledger) == 1 and ledger[0].startswith("2026-W48") and "\tsent" in ledger[0], ledger


def vote_and_read_digest(page, live) -> None:
    """Ada votes for tool B from her delivered issue (the page's button POSTs); the digest counts it."""
    mail = next(m for m in outbox(live) if m["To"].addresses[0].addr_spec == "ada@readers.example" and "[TEST]" not in m["Subject"])
    text = mail.get_body(("plain",)).get_content()
    links = re.findall(rf"(http://\S+/vote/\S+/{HAIKU}/[a-z0-9-]+)", text)
    ship_b = links[1]
    page.goto(ship_b)
    button = page.get_by_role("button", name=re.compile("^Record my vote"))
    submit(page, button)
    expect(page.get_by_role("heading", name="Thanks, your vote counts")).to_be_visible()
    page.goto(live.url + "/admin/stats/comparisons")
    expect(page.get_by_role("heading", name="Vote digest")).to_be_visible()
    group = page.locator("tbody", has=page.get_by_role("rowheader", name=re.compile("Claude Haiku")))
    assert "1 vote" in group.get_by_role("rowheader").inner_text()
    counts = [row.split("\t")[1] for row in group.locator("tr").all_inner_texts()[1:]]
    assert sorted(counts) == ["0", "1"], counts


def test_an_editor_runs_a_whole_week_in_the_console(chromium, live_factory, db_url):  # noqa: F811
    live = live_factory(db_url)
    db = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    seed(live)
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    try:
        sign_in(page, live)
        edit_comparison(page, live)
        draft_week(page, live)
        order = reorder(page)
        edit_note(page, order)
        send_a_test(page, live)
        schedule(page, live)
        shot(page, "issue", db)
        send_now(page, live, len(READERS))
        watch_send(page, live, len(READERS), db)
        look_reader_up(page, live)
        vote_and_read_digest(page, live)
    finally:
        page.close()
