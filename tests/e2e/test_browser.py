"""Pages and previews as a person sees them, in headless Chromium, on SQLite and PostgreSQL."""

import re
from email import message_from_bytes, policy

import requests
from playwright.sync_api import expect
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.issues.drafting import draft_issue
from newsletter.issues.preview import write_preview
from newsletter.subscribers.models import ConsentEvent, Subscriber
from newsletter.tokens import Purpose
from tests.conftest import TEST_SECRET, link_token
from tests.web.conftest import live_factory  # noqa: F401  (fixture)


def test_signup_and_confirm_in_a_browser(chromium, live_factory, db_url, tmp_path):  # noqa: F811
    live = live_factory(db_url)
    page = chromium.new_page(viewport={"width": 375, "height": 800})
    page.goto(live.url + "/")
    page.get_by_label("Email address").fill("browser.reader@example.com")
    page.get_by_label("Name").fill("Bea")
    page.get_by_label("Developer Tools").check()
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    page.screenshot(path=str(tmp_path / "signup-done.png"))
    assert live.deliver_mail() == 1
    link = live.link_in(live.mails()[-1], "confirm")
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="You are in")).to_be_visible()
    with session_scope(live.engine) as session:
        reader = session.exec(select(Subscriber).where(Subscriber.email == "browser.reader@example.com")).one()
    assert reader.status == "active"
    # The weekly issue reaches the reader with RFC 8058 headers.
    from newsletter.delivery.sender import deliver, start_send
    from newsletter.delivery.transports import make_transport

    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    start_send(live.engine, issue.id)
    deliver(live.engine, live.settings, make_transport(live.settings), TEST_SECRET, issue.id)
    issue_mail = message_from_bytes(next(live.settings.mail.file.dir.glob("i*.eml")).read_bytes(),
                                    policy=policy.default)
    assert issue_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = re.search(r"<(https?://[^>]+/unsubscribe/[^>]+)>", issue_mail["List-Unsubscribe"]).group(1)
    # Opening the link in the browser shows one button and changes nothing (mail scanners fetch links).
    page.goto(one_click)
    expect(page.get_by_role("button", name="Unsubscribe")).to_be_visible()
    page.close()
    with session_scope(live.engine) as session:
        assert session.get(Subscriber, reader.id).status == "active"
    # The mailbox provider's one-click POST: form body only, no cookies, no redirects followed.
    response = requests.post(one_click, data={"List-Unsubscribe": "One-Click"}, allow_redirects=False, timeout=10)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers and "location" not in response.headers
    with session_scope(live.engine) as session:
        assert session.get(Subscriber, reader.id).status == "unsubscribed"
        last = session.exec(select(ConsentEvent).where(ConsentEvent.subscriber_id == reader.id)
                            .order_by(ConsentEvent.id.desc())).first()
        assert (last.kind, last.source) == ("unsubscribed", "link") and "one-click" in last.detail


def test_unsubscribe_page_button_in_a_browser(chromium, live_factory, db_url):  # noqa: F811
    from datetime import UTC, datetime

    live = live_factory(db_url)
    with session_scope(live.engine) as session:
        reader = Subscriber(email="leaver@example.com", status="active", confirmed_at=datetime.now(UTC))
        session.add(reader)
        session.flush()
        reader_id = reader.id
    page = chromium.new_page()
    page.goto(f"{live.url}/unsubscribe/{link_token(live.engine, Purpose.unsubscribe, reader_id)}")
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    page.close()
    with session_scope(live.engine) as session:
        assert session.get(Subscriber, reader_id).status == "unsubscribed"


def test_signup_errors_show_next_to_the_field(chromium, live_factory, db_url):  # noqa: F811
    live = live_factory(db_url)
    page = chromium.new_page()
    page.goto(live.url + "/")
    page.get_by_label("Email address").fill("nobody-at-example")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_load_state()
    error = page.locator("#email-error")
    assert error.is_visible() and "@" in error.inner_text()
    assert page.get_by_label("Email address").get_attribute("aria-invalid") == "true"
    page.close()


def test_preview_screenshots_light_dark_phone_desktop(chromium, sample_engine, settings, tmp_path):
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    paths = write_preview(sample_engine, settings, issue.id, tmp_path, screenshots=True, chromium=chromium)
    pngs = [p for p in paths if p.suffix == ".png"]
    assert sorted(p.name for p in pngs) == [f"issue-{issue.id}-{w}-{s}.png" for w in (375, 640) for s in ("dark", "light")]
    from struct import unpack

    sizes = {}
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        sizes[png.name] = unpack(">II", data[16:24])
    assert sizes[f"issue-{issue.id}-375-light.png"][0] == 375
    assert sizes[f"issue-{issue.id}-640-dark.png"][0] == 640
    # Stacked on a phone: the page is taller at 375 px than at 640 px.
    assert sizes[f"issue-{issue.id}-375-light.png"][1] > sizes[f"issue-{issue.id}-640-light.png"][1]
    # Dark and light differ (the dark styles apply).
    assert (tmp_path / f"issue-{issue.id}-640-dark.png").read_bytes() != (tmp_path / f"issue-{issue.id}-640-light.png").read_bytes()


def test_two_tools_side_by_side_on_desktop_and_stacked_on_a_phone(chromium, sample_engine, settings, tmp_path):
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    html_path = write_preview(sample_engine, settings, issue.id, tmp_path)[0]
    page = chromium.new_page(viewport={"width": 640, "height": 900})
    page.goto(html_path.as_uri())
    a, b = page.get_by_role("heading", name="GroqCloud", exact=True), page.get_by_role("heading", name="Together AI", exact=True)
    assert abs(a.bounding_box()["y"] - b.bounding_box()["y"]) < 5 and a.bounding_box()["x"] < b.bounding_box()["x"]
    page.set_viewport_size({"width": 375, "height": 900})
    assert b.bounding_box()["y"] > a.bounding_box()["y"] + 100
    page.close()


def test_vote_from_the_email_in_a_browser(chromium, live_factory, db_url, tmp_path):  # noqa: F811
    from datetime import UTC, datetime

    from newsletter.content.models import Vote
    from newsletter.delivery.sender import deliver, start_send
    from newsletter.delivery.transports import make_transport

    live = live_factory(db_url)
    with session_scope(live.engine) as session:
        voter = Subscriber(email="clicker@example.com", status="active", confirmed_at=datetime.now(UTC))
        session.add(voter)
    issue = draft_issue(live.engine, live.settings, "2026-W48").issue
    start_send(live.engine, issue.id)
    deliver(live.engine, live.settings, make_transport(live.settings), TEST_SECRET, issue.id)
    eml = next(live.settings.mail.file.dir.glob("i*.eml"))
    html = message_from_bytes(eml.read_bytes(), policy=policy.default).get_body(("html",)).get_content()
    mail = tmp_path / "mail.html"
    mail.write_text(html)
    page = chromium.new_page()
    page.goto(mail.as_uri())  # the reader opens the mail and clicks a vote link
    page.get_by_role("link", name="Ship Hugging Face Inference Providers v2").click()
    page.wait_for_load_state()
    with session_scope(live.engine) as session:
        assert session.exec(select(Vote)).all() == []  # opening the link counts nothing
    page.get_by_role("button", name="Record my vote: Ship Hugging Face Inference Providers v2").click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="Thanks, your vote counts")).to_be_visible()
    with session_scope(live.engine) as session:
        assert len(session.exec(select(Vote)).all()) == 1
    page.close()
