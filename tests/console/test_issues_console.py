"""The console's issue pages on SQLite and PostgreSQL: every action through the forms, the state
rules, the previews' framing and forced colour scheme, the send confirmation, the SSE progress."""

from __future__ import annotations

import json
import re

from tests.console.conftest import csrf_in
from tests.console.issues_helpers import add_readers, audit_entries, drafted, outbox_mails, run_worker


def events(client, issue_id: int, limit: int) -> list[dict]:
    with client.stream("GET", f"/admin/issues/{issue_id}/events?limit={limit}") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())
    return [json.loads(line[len("data: "):]) for line in body.splitlines() if line.startswith("data: ")]


def test_list_and_issue_page_for_viewer_and_editor(console):
    issue_id = drafted(console)
    viewer = console.login("viewer")
    listing = viewer.get("/admin/issues")
    assert listing.status_code == 200 and f'href="/admin/issues/{issue_id}"' in listing.text
    assert 'action="/admin/issues"' not in listing.text  # a viewer gets no draft form
    page = viewer.get(f"/admin/issues/{issue_id}")
    assert page.status_code == 200 and "<form" not in page.text.split("</nav>")[1]
    frames = re.findall(r'<iframe class="(phone|desktop)" src="([^"]+)"', page.text)
    assert sorted(frames) == sorted([("phone", f"/admin/issues/{issue_id}/preview?scheme=light"),
                                     ("phone", f"/admin/issues/{issue_id}/preview?scheme=dark"),
                                     ("desktop", f"/admin/issues/{issue_id}/preview?scheme=light"),
                                     ("desktop", f"/admin/issues/{issue_id}/preview?scheme=dark")])
    editor = console.login("editor").get(f"/admin/issues/{issue_id}").text
    for action in ("edit", "comparisons", "test", "schedule"):
        assert f'action="/admin/issues/{issue_id}/{action}"' in editor
    assert "Pre-send checks" in editor and "postal-address" in editor


def test_previews_frame_same_origin_and_force_the_scheme(console):
    issue_id = drafted(console)
    viewer = console.login("viewer")
    dark = viewer.get(f"/admin/issues/{issue_id}/preview?scheme=dark")
    light = viewer.get(f"/admin/issues/{issue_id}/preview?scheme=light")
    assert dark.headers["x-frame-options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in dark.headers[
        "content-security-policy"] and "script-src 'none'" in dark.headers["content-security-policy"]
    assert "prefers-color-scheme" not in dark.text and "@media all" in dark.text
    assert "prefers-color-scheme" not in light.text and "@media not all" in light.text
    text = viewer.get(f"/admin/issues/{issue_id}/preview?format=text")
    assert text.headers["content-type"].startswith("text/plain") and "ISSUE 2026-W48" in text.text
    assert viewer.get(f"/admin/issues/{issue_id}/preview?scheme=evil").status_code == 422
    assert viewer.get("/admin/issues/999999").status_code == 404


def test_edit_note_and_comparisons_through_the_forms(console):
    issue_id = drafted(console)
    editor = console.login("editor")
    page = editor.get(f"/admin/issues/{issue_id}").text
    token = csrf_in(page)
    slugs = list(dict.fromkeys(re.findall(r'<input type="hidden" name="slug" value="([^"]+)">', page)))
    saved = editor.post(f"/admin/issues/{issue_id}/edit", data={
        "subject": "Picked for you", "preheader": "Two hosts", "intro": "A *short* note with [a link](https://a.example/x).",
        "subject_follows_reader": "on", "csrf_token": token})
    assert saved.status_code == 303 and saved.headers["location"].endswith("?done=saved")
    shown = editor.get(saved.headers["location"]).text
    assert "Saved." in shown and "Picked for you" in shown
    assert 'name="subject_follows_reader" aria-describedby="follow-hint" checked' in shown
    assert audit_entries(console, "issue.edit")[-1].after["subject_follows_reader"] is True
    preview = editor.get(f"/admin/issues/{issue_id}/preview").text
    assert "<em>short</em>" in preview and 'href="https://a.example/x"' in preview

    first = slugs[0]
    moved = editor.post(f"/admin/issues/{issue_id}/comparisons", data={"action": "down", "slug": first, "csrf_token": token})
    assert moved.status_code == 303
    after = audit_entries(console, "issue.comparisons")[-1]
    assert after.before["comparisons"][0] == first and after.after["comparisons"][1] == first
    editor.post(f"/admin/issues/{issue_id}/comparisons", data={"action": "up", "slug": first, "csrf_token": token})
    editor.post(f"/admin/issues/{issue_id}/comparisons", data={"action": "remove", "slug": first, "csrf_token": token})
    assert first not in audit_entries(console, "issue.comparisons")[-1].after["comparisons"]
    page = editor.get(f"/admin/issues/{issue_id}").text
    assert f'<option value="{first}">' in page  # offered again
    added = editor.post(f"/admin/issues/{issue_id}/comparisons", data={"action": "add", "slug": first, "csrf_token": token})
    assert added.status_code == 303
    assert audit_entries(console, "issue.comparisons")[-1].after["comparisons"][-1] == first

    bad = editor.post(f"/admin/issues/{issue_id}/edit", data={
        "subject": "x", "intro": "[x](javascript:alert(1))", "csrf_token": token})
    assert bad.status_code == 422 and "javascript: is not allowed" in bad.text and 'role="alert"' in bad.text
    assert editor.post(f"/admin/issues/{issue_id}/comparisons",
                       data={"action": "sideways", "slug": first, "csrf_token": token}).status_code == 422


def test_test_send_and_schedule_from_the_page(console):
    issue_id = drafted(console)
    editor = console.login("editor")
    token = csrf_in(editor.get(f"/admin/issues/{issue_id}").text)
    answer = editor.post(f"/admin/issues/{issue_id}/test", data={"to": "a@verdicts.example, b@verdicts.example",
                                                                 "csrf_token": token})
    assert answer.status_code == 200 and "a@verdicts.example: sent" in answer.text
    assert sorted(mail["To"] for mail in outbox_mails(console)) == ["a@verdicts.example", "b@verdicts.example"]
    refused = editor.post(f"/admin/issues/{issue_id}/test", data={"to": "nope", "csrf_token": token})
    assert refused.status_code == 422 and 'role="alert"' in refused.text

    scheduled = editor.post(f"/admin/issues/{issue_id}/schedule", data={
        "at": "2031-03-04T07:30", "ignore_checks": "yes", "csrf_token": token})
    assert scheduled.status_code == 303
    page = editor.get(scheduled.headers["location"]).text
    assert "Scheduled for <strong>2031-03-04 07:30 CET</strong>" in page and "Unschedule" in page
    assert 'name="at" value="2031-03-04T07:30"' in page  # a reschedule starts from the time set
    assert audit_entries(console, "issue.schedule")[0].after["scheduled_at"].startswith("2031-03-04T06:30")
    ignored = sorted(audit_entries(console, "issue.schedule")[0].after["ignored_checks"])
    assert "week" in ignored and f"although these checks failed when it was scheduled: {', '.join(ignored)};" in page
    checked = editor.post(f"/admin/issues/{issue_id}/schedule", data={"at": "2031-03-04T07:30", "csrf_token": token})
    assert checked.status_code == 409 and "Pre-send checks fail" in checked.text
    past = editor.post(f"/admin/issues/{issue_id}/schedule", data={"at": "2020-01-01T07:00", "csrf_token": token})
    assert past.status_code == 422 and "at: that time is in the past" in past.text
    back = editor.post(f"/admin/issues/{issue_id}/unschedule", data={"csrf_token": token})
    assert back.status_code == 303 and "Back to draft" in editor.get(back.headers["location"]).text


def test_send_now_confirms_the_count_then_a_worker_delivers_and_the_stream_reports(console):
    add_readers(console.engine, 4)
    issue_id = drafted(console)
    editor = console.login("editor")
    confirm = editor.get(f"/admin/issues/{issue_id}/send")
    assert confirm.status_code == 200 and "<strong>4 readers</strong>" in confirm.text
    assert audit_entries(console, "issue.send") == []  # GET changed nothing
    token = csrf_in(confirm.text)
    # ignore_checks: the sample week stays 2026-W48 while the clock moves on (the week check)
    started = editor.post(f"/admin/issues/{issue_id}/send", data={"csrf_token": token, "ignore_checks": "yes"})
    assert started.status_code == 303 and started.headers["location"] == f"/admin/issues/{issue_id}/progress"
    progress = editor.get(started.headers["location"]).text
    assert 'data-field="pending">4<' in progress and 'src="/admin/static/issue-progress.js"' in progress
    assert 'action="/admin/issues/%d/pause"' % issue_id in progress

    first = events(editor, issue_id, 2)
    assert len(first) == 2 and first[0]["pending"] == 4 and first[0]["state"] == "sending" and not first[0]["done"]
    paused = editor.post(f"/admin/issues/{issue_id}/pause", data={"csrf_token": token})
    assert paused.status_code == 303 and "Paused" in editor.get(paused.headers["location"]).text
    assert events(editor, issue_id, 1)[0]["state"] == "paused"
    resumed = editor.post(f"/admin/issues/{issue_id}/resume", data={"csrf_token": token})
    assert resumed.status_code == 303 and "Sending again." in editor.get(resumed.headers["location"]).text
    assert run_worker(console, issue_id).sent == 4
    # The same address reloaded once the send is over: the notice no longer holds, so it is gone.
    stale = editor.get(resumed.headers["location"]).text
    assert "Sending again." not in stale and 'data-field="state">sent<' in stale
    final = events(editor, issue_id, 50)
    assert len(final) == 1 and final[0]["done"] and final[0]["sent"] == 4 and final[0]["pending"] == 0

    page = editor.get(f"/admin/issues/{issue_id}").text  # read-only now
    assert f'action="/admin/issues/{issue_id}/edit"' not in page and "can no longer change" in page
    late = editor.post(f"/admin/issues/{issue_id}/edit", data={"subject": "Too late", "csrf_token": token})
    assert late.status_code == 409 and "can no longer change" in late.text
    again = editor.post(f"/admin/issues/{issue_id}/send", data={"csrf_token": token})
    assert again.status_code == 409 and "cannot be sent again" in again.text


def test_the_progress_script_is_same_origin_only_on_admin(console):
    script = console.client().get("/admin/static/issue-progress.js")
    assert script.status_code == 200 and "EventSource" in script.text
    assert "script-src 'self'" in console.login("viewer").get("/admin/issues").headers["content-security-policy"]
    assert "script-src 'none'" in console.client().get("/").headers["content-security-policy"]


def test_draft_a_week_and_cancel_a_send_from_the_console(console):
    add_readers(console.engine, 2)
    editor = console.login("editor")
    token = csrf_in(editor.get("/admin/issues").text)
    drafted_page = editor.post("/admin/issues", data={"week": "2026-W47", "csrf_token": token})
    assert drafted_page.status_code == 303 and drafted_page.headers["location"].endswith("?done=drafted")
    issue_id = int(drafted_page.headers["location"].split("/")[3].split("?")[0])
    assert audit_entries(console, "issue.draft")[0].target == f"issue:{issue_id}"
    refused = editor.post("/admin/issues", data={"week": "1999-W01", "csrf_token": token})
    assert refused.status_code == 422 and 'role="alert"' in refused.text and "1999-W01" in refused.text
    checked = editor.post(f"/admin/issues/{issue_id}/send", data={"csrf_token": token})  # W47 is old news now
    assert checked.status_code == 409 and "Pre-send checks fail" in checked.text and "Send although checks fail" in checked.text
    assert editor.post(f"/admin/issues/{issue_id}/send",
                       data={"csrf_token": token, "ignore_checks": "yes"}).status_code == 303
    cancelled = editor.post(f"/admin/issues/{issue_id}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 303 and "Cancelled" in editor.get(cancelled.headers["location"]).text
    figures = events(editor, issue_id, 5)
    assert len(figures) == 1 and figures[0]["state"] == "cancelled" and figures[0]["skipped"] == 2
    assert audit_entries(console, "issue.cancel")[0].after == {"state": "cancelled", "skipped": 2}
