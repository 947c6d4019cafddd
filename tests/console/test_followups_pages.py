"""The console's follow-ups as an editor uses them: from the comparison's page to a draft (what
changed and the reader count shown before anything is saved), the mail in frames, the send
confirmation stating the count, the send, and the figures afterwards."""

from __future__ import annotations

import re

from sqlalchemy import select, update

from newsletter.db import session_scope
from newsletter.delivery.followup_sender import deliver_all
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.issues.followup_models import Followup
from newsletter.issues.frozen import issue_view
from newsletter.issues.models import Issue
from newsletter.subscribers.models import Subscriber
from tests.conftest import TEST_SECRET
from tests.console.conftest import csrf_in
from tests.delivery.test_followups import _flip_verdict


def test_an_editor_drafts_previews_and_sends_a_followup(console):
    with session_scope(console.engine) as session:
        session.add_all([Subscriber(email=f"r{n}@example.com", status="active") for n in range(2)])
    issue_id = draft_issue(console.engine, console.settings, "2026-W48").issue.id
    start_send(console.engine, issue_id, settings=console.settings)
    with session_scope(console.engine) as session:
        session.execute(update(Delivery).values(state="sent"))  # as a finished send leaves them
        slug = issue_view(session, console.settings, session.get(Issue, issue_id)).comparisons[0].slug
    editor = console.login("editor")
    token = csrf_in(editor.get("/admin").text)
    assert f'href="/admin/followups/new?comparison={slug}"' in editor.get(f"/admin/comparisons/{slug}").text
    unchanged = editor.get(f"/admin/followups/new?comparison={slug}")
    assert unchanged.status_code == 200 and "Nothing changed materially" in unchanged.text
    refused = editor.post("/admin/followups", data={"comparison": slug, "subject": "Update", "csrf_token": token})
    assert refused.status_code == 409 and "nothing changed materially" in refused.text
    assert editor.get("/admin/followups/new?comparison=no-such").status_code == 404

    _flip_verdict(console.engine, issue_id)
    proposal = editor.get(f"/admin/followups/new?comparison={slug}").text
    assert "the panel now says" in proposal and "<strong>2 readers</strong>" in proposal
    with session_scope(console.engine) as session:
        assert session.execute(select(Followup.id)).first() is None  # the GET saved nothing
    created = editor.post("/admin/followups", data={"comparison": slug, "subject": "The verdict moved",
                                                    "note": "See **why**.", "csrf_token": token})
    assert created.status_code == 303, created.text
    page_url = created.headers["location"].split("?")[0]
    followup_id = int(page_url.rsplit("/", 1)[1])
    shown = editor.get(created.headers["location"]).text
    assert "Drafted." in shown and f"/admin/followups/{followup_id}/preview?scheme=dark" in shown
    mail = editor.get(f"/admin/followups/{followup_id}/preview?scheme=light")
    assert "<strong>why</strong>" in mail.text and "/unsubscribe/" in mail.text
    assert "script-src 'none'" in mail.headers["content-security-policy"]

    confirm = editor.get(f"/admin/followups/{followup_id}/send").text
    assert "Send to 2 readers" in confirm
    sent = editor.post(f"/admin/followups/{followup_id}/send", data={"csrf_token": token})
    assert sent.status_code == 303
    transport = make_transport(console.settings)
    assert deliver_all(console.engine, console.settings, transport, TEST_SECRET).sent == 2
    after = editor.get(page_url).text
    assert re.search(r"<td>sent</td><td class=\"num\">2</td>", after) and "Follow-up #" in after
    listing = editor.get("/admin/followups").text
    assert "The verdict moved" in listing and f'<option value="{slug}">' in listing
    again = editor.post(f"/admin/followups/{followup_id}/send", data={"csrf_token": token})
    assert again.status_code == 409 and "nobody gets a follow-up twice" in again.text
    assert editor.get("/admin/followups/9999").status_code == 404
