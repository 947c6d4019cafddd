"""The issues API end to end on SQLite and PostgreSQL: every action, the state rules, the error
codes, the audit trail, and a send that a worker actually delivers."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.console.issues_helpers import WEEK, add_readers, audit_entries, drafted, outbox_mails, run_worker


def test_draft_edit_reorder_and_preview(console):
    api, auth = console.client(), console.bearer("issues")
    created = api.post("/api/v1/issues", json={"week": WEEK}, headers=auth)
    assert created.status_code == 201, created.text
    issue = created.json()
    assert issue["state"] == "draft" and issue["editable"] and len(issue["comparisons"]) >= 3
    again = api.post("/api/v1/issues", json={"week": WEEK}, headers=auth)
    assert again.status_code == 200 and again.json()["id"] == issue["id"]
    base = f"/api/v1/issues/{issue['id']}"

    note = "We *loved* this week. [Tell us](mailto:ed@verdicts.example) or read [the archive](https://verdicts.example/issues)."
    patched = api.patch(base, json={"subject": "Three picks", "preheader": "Fast hosts", "intro": note,
                                    "subject_follows_reader": True}, headers=auth)
    assert patched.status_code == 200 and patched.json()["subject"] == "Three picks"
    assert patched.json()["subject_follows_reader"] is True and not issue["subject_follows_reader"]
    order = list(reversed(issue["comparisons"]))[:-1]
    put = api.put(f"{base}/comparisons", json={"comparisons": order}, headers=auth)
    assert put.status_code == 200 and put.json()["comparisons"] == order

    read = console.bearer("read")
    html = api.get(f"{base}/preview.html", headers=read)
    assert html.status_code == 200 and "<em>loved</em>" in html.text and 'href="mailto:ed@verdicts.example"' in html.text
    assert "frame-ancestors 'self'" in html.headers["content-security-policy"]
    text = api.get(f"{base}/preview.txt", headers=read).text
    assert "We *loved* this week." in text and "Tell us <mailto:ed@verdicts.example>" in text
    positions = [text.index(f"/compare/{slug}") for slug in order]
    assert positions == sorted(positions)  # the mail follows the new order
    checks = api.get(f"{base}/checks", headers=read).json()
    assert {check["name"] for check in checks} >= {"size", "links", "week"}

    edit = audit_entries(console, "issue.edit")[-1]
    assert edit.actor == "token:token-issues" and edit.before["subject"] != "Three picks"
    assert edit.after["subject"] == "Three picks" and edit.after["intro"] == note
    reorder = audit_entries(console, "issue.comparisons")[-1]
    assert reorder.before["comparisons"] == issue["comparisons"] and reorder.after["comparisons"] == order
    assert audit_entries(console, "issue.draft")[0].after["comparisons"] == issue["comparisons"]


def test_refusals_name_the_field_and_use_stable_codes(console):
    api, auth = console.client(), console.bearer("all")
    issue_id = drafted(console)
    base = f"/api/v1/issues/{issue_id}"
    cases = [
        ("patch", base, {"subject": " "}, 422, "invalid_request", "subject"),
        ("patch", base, {"preheader": "line\nbreak"}, 422, "invalid_request", "preheader"),
        ("patch", base, {"intro": "[x](javascript:alert(1))"}, 422, "invalid_request", "intro"),
        ("put", f"{base}/comparisons", {"comparisons": ["no-such-comparison"]}, 422, "invalid_request", "comparisons"),
        ("post", "/api/v1/issues", {"week": "2026-W99"}, 422, "invalid_request", "week"),
        ("post", "/api/v1/issues", {"week": "2020-W01"}, 422, "invalid_request", "week"),
        ("post", f"{base}/test", {"to": ["not an address"]}, 422, "invalid_request", "to"),
        ("post", f"{base}/schedule", {"at": "tomorrow"}, 422, "invalid_request", "at"),
        ("post", f"{base}/schedule", {"at": "2020-01-01 07:00"}, 422, "invalid_request", "at"),
        ("post", f"{base}/unschedule", None, 409, "invalid_transition", None),
        ("post", f"{base}/pause", None, 409, "invalid_transition", None),
        ("post", f"{base}/resume", None, 409, "invalid_transition", None),
        ("get", "/api/v1/issues/999999", None, 404, "not_found", None),
        ("patch", "/api/v1/issues/999999", {"subject": "x"}, 404, "not_found", None),
        ("post", "/api/v1/issues/999999/send", {}, 404, "not_found", None),
        ("get", "/api/v1/issues/999999/status", None, 404, "not_found", None),
    ]
    for method, path, body, status, code, field in cases:
        answer = api.request(method.upper(), path, json=body, headers=auth)
        assert answer.status_code == status, (method, path, answer.text)
        error = answer.json()["error"]
        assert error["code"] == code and error["message"], (path, error)
        if field:
            assert field in error["fields"], (path, error)
    assert api.get(base, headers=auth).json()["subject"] != " "  # nothing changed


def test_test_send_lands_in_the_file_outbox(console):
    api, auth = console.client(), console.bearer("all")
    issue_id = drafted(console)
    answer = api.post(f"/api/v1/issues/{issue_id}/test", json={"to": ["chief@verdicts.example", "b@verdicts.example"]},
                      headers=auth)
    assert answer.status_code == 200 and [r["outcome"] for r in answer.json()["results"]] == ["sent", "sent"]
    mails = outbox_mails(console)
    assert sorted(mail["To"] for mail in mails) == ["b@verdicts.example", "chief@verdicts.example"]
    assert all(mail["Subject"].startswith("[TEST]") for mail in mails)
    assert audit_entries(console, "issue.test")[0].after == {"to": ["chief@verdicts.example", "b@verdicts.example"]}


def test_schedule_at_a_local_time_then_unschedule(console):
    api, auth = console.client(), console.bearer("all")
    issue_id = drafted(console)
    base = f"/api/v1/issues/{issue_id}"
    zone = ZoneInfo("Europe/Berlin")
    local = (datetime.now(zone) + timedelta(days=35)).replace(hour=7, minute=30, second=0, microsecond=0)
    at = local.strftime("%Y-%m-%d %H:%M")
    refused = api.post(f"{base}/schedule", json={"at": at}, headers=auth)  # weeks after the sample week
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "checks_failed"
    assert "checks.week" in refused.json()["error"]["fields"]
    answer = api.post(f"{base}/schedule", json={"at": at, "ignore_checks": True}, headers=auth)
    assert answer.status_code == 200, answer.text
    assert datetime.fromisoformat(answer.json()["scheduled_at"]) == local
    assert answer.json()["local"].startswith(at)
    assert api.get(base, headers=auth).json()["state"] == "scheduled"
    assert audit_entries(console, "issue.schedule")[0].after["ignored_checks"] == ["week"]
    assert api.patch(base, json={"subject": "Still editable"}, headers=auth).status_code == 200
    assert api.post(f"{base}/unschedule", headers=auth).json()["state"] == "draft"
    assert api.get(base, headers=auth).json()["scheduled_at"] is None


def test_send_pause_resume_and_a_worker_delivers(console):
    add_readers(console.engine, 5)
    api, auth = console.client(), console.bearer("all")
    issue_id = drafted(console)
    base = f"/api/v1/issues/{issue_id}"
    # ignore_checks: the sample week stays 2026-W48 while the clock moves on (the week check)
    sent = api.post(f"{base}/send", json={"ignore_checks": True}, headers=auth)
    assert sent.status_code == 200 and sent.json() == {"state": "sending", "recipients": 5}
    status = api.get(f"{base}/status", headers=console.bearer("read")).json()
    assert status["pending"] == 5 and status["sent"] == 0 and status["state"] == "sending"
    assert api.post(f"{base}/pause", headers=auth).json()["state"] == "paused"
    assert run_worker(console, issue_id).sent == 0  # a paused issue is not claimed
    assert api.post(f"{base}/resume", headers=auth).json()["state"] == "sending"
    assert run_worker(console, issue_id).sent == 5
    status = api.get(f"{base}/status", headers=auth).json()
    assert status["state"] == "sent" and status["sent"] == 5 and status["pending"] == 0 and status["eta_seconds"] is None
    assert status["rate_per_minute"] > 0
    assert len([mail for mail in outbox_mails(console) if not mail["Subject"].startswith("[TEST]")]) >= 5

    for method, path, body in (("PATCH", base, {"subject": "Too late"}), ("PUT", f"{base}/comparisons", {"comparisons": []})):
        answer = api.request(method, path, json=body, headers=auth)
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "issue_not_editable"
    for action in ("send", "pause", "resume", "cancel", "schedule"):
        body = {"at": "2030-01-01 07:00", "ignore_checks": True} if action == "schedule" else None
        answer = api.post(f"{base}/{action}", json=body, headers=auth)
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "invalid_transition", (action, answer.text)
    # Without ignore_checks the state is told too, not the sent issue's stale checks.
    late = api.post(f"{base}/schedule", json={"at": "2030-01-01 07:00"}, headers=auth)
    assert (late.status_code, late.json()["error"]["code"]) == (409, "invalid_transition"), late.text
    assert "only a draft or scheduled issue can be scheduled" in late.json()["error"]["message"]
    assert [entry.action for entry in audit_entries(console, "issue.send")] == ["issue.send"]
    assert audit_entries(console, "issue.send")[0].after["recipients"] == 5


def test_cancel_skips_the_queue(console):
    add_readers(console.engine, 3)
    api, auth = console.client(), console.bearer("all")
    issue_id = drafted(console)
    sent = api.post(f"/api/v1/issues/{issue_id}/send", json={"ignore_checks": True}, headers=auth)
    assert sent.json()["recipients"] == 3
    cancelled = api.post(f"/api/v1/issues/{issue_id}/cancel", headers=auth).json()
    assert cancelled == {"state": "cancelled", "skipped": 3}
    assert run_worker(console, issue_id).sent == 0
    status = api.get(f"/api/v1/issues/{issue_id}/status", headers=auth).json()
    assert status["skipped"] == 3 and status["state"] == "cancelled"
