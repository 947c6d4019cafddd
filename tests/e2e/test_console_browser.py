"""An editor in headless Chromium, keyboard only: set a password from the CLI's link, sign in at
/admin/login with the fixed form fields, see the dashboard, sign out. SQLite and PostgreSQL."""

from __future__ import annotations

from newsletter.db import session_scope
from newsletter.editors import accounts, audit
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.models import Subscriber
from tests.conftest import TEST_SECRET
from tests.web.conftest import live_factory  # noqa: F401  (fixture)

PASSWORD = "correct horse battery staple"


def test_an_editor_signs_in_and_sees_the_dashboard(chromium, live_factory, db_url):  # noqa: F811
    live = live_factory(db_url)
    draft_issue(live.engine, live.settings, "2026-W48")
    with session_scope(live.engine) as session:
        for n, status in enumerate(["active", "active", "pending", "unsubscribed"]):
            session.add(Subscriber(email=f"reader{n}@example.com", status=status))
        editor = accounts.add_editor(session, "chief@editors.example", "owner", audit.Actor.cli())
        link = f"{live.url}/admin/set-password/{accounts.set_password_token(TEST_SECRET, editor)}"
    page = chromium.new_page(viewport={"width": 375, "height": 800})
    try:
        page.goto(link)
        page.get_by_label("New password").fill(PASSWORD)
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.get_by_role("heading", name="Password set").is_visible(), page.inner_text("main")

        page.goto(live.url + "/admin")  # not signed in: sent to the login page
        assert page.url == live.url + "/admin/login"
        page.focus("input[name=email]")
        page.keyboard.type("chief@editors.example")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.name") == "password"
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Sign in"
        page.keyboard.press("Enter")
        page.wait_for_url(live.url + "/admin")
        assert page.get_by_role("heading", name="Dashboard").is_visible()
        body = page.inner_text("main")
        assert "2026-W48" in body and "Not scheduled yet." in body
        readers = {row.split("\t")[0]: row.split("\t")[1] for row in
                   page.locator("table").first.locator("tbody tr").all_inner_texts()}
        assert readers["active"] == "2" and readers["pending"] == "1" and readers["unsubscribed"] == "1"
        cookie = next(c for c in page.context.cookies() if c["name"] == "wv_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

        page.get_by_role("button", name="Sign out chief@editors.example").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(live.url + "/admin/login")
        page.goto(live.url + "/admin")
        assert page.url == live.url + "/admin/login"
    finally:
        page.close()
