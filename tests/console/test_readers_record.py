"""A reader's record and the editors' actions on it, through the REST API and the console:
the ledger, consent history and votes show what was recorded; unsubscribe has the effects of
the reader's own one-click unsubscribe; resubscribe only queues a confirmation (double
opt-in); forget erases and suppresses by hash; every action is audit-logged without the address."""

from __future__ import annotations

from sqlalchemy import func, select

from newsletter.content.models import Comparison, ComparisonTool, Tool, Vote
from newsletter.db import session_scope, utcnow
from newsletter.delivery.models import Delivery
from newsletter.editors.models import AuditEntry
from newsletter.issues.models import Issue
from newsletter.subscribers.consent import Origin
from newsletter.subscribers.models import ConsentEvent, Subscriber, Suppression, TransactionalMail
from newsletter.subscribers.service import hashed_email, is_suppressed, record_consent
from tests.console.conftest import csrf_in

EMAIL = "jane.reader@example.com"


def make_reader(engine, email: str = EMAIL, status: str = "active") -> int:
    """A reader with a signup and confirmation from the web, one delivered issue and one vote."""
    with session_scope(engine) as session:
        reader = Subscriber(email=email, name="Jane Reader", status=status, confirmed_at=utcnow())
        session.add(reader)
        session.flush()
        origin = Origin("203.0.113.7", "Firefox/130", "2026-11-25")
        record_consent(session, reader, "signup_requested", "form", origin=origin)
        record_consent(session, reader, "confirmed", "link", "confirm link", origin)
        issue = session.execute(select(Issue).where(Issue.week == "2026-W48")).scalars().first()
        if issue is None:
            issue = Issue(week="2026-W48", subject="Week 48: the verdicts")
            session.add(issue)
            session.flush()
        session.add(Delivery(issue_id=issue.id, subscriber_id=reader.id, state="sent", attempts=1,
                             sent_at=utcnow(), provider_message_id="prov-123"))
        comparison = session.execute(select(Comparison).order_by(Comparison.id)).scalars().first()
        tool_id = session.execute(select(ComparisonTool.tool_id).where(
            ComparisonTool.comparison_id == comparison.id)).scalars().first()
        session.add(Vote(comparison_id=comparison.id, subscriber_id=reader.id, tool_id=tool_id))
        return reader.id


def test_the_api_record_shows_ledger_consent_and_votes(console):
    reader_id = make_reader(console.engine)
    answer = console.client().get(f"/api/v1/readers/{reader_id}", headers=console.bearer("read"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["email"] == EMAIL and body["status"] == "active" and body["topics"] == []
    assert [(r["week"], r["state"], r["provider_message_id"]) for r in body["ledger"]] == [("2026-W48", "sent", "prov-123")]
    assert [(c["kind"], c["ip"], c["user_agent"], c["consent_version"]) for c in body["consent"]] == [
        ("confirmed", "203.0.113.7", "Firefox/130", "2026-11-25"),
        ("signup_requested", "203.0.113.7", "Firefox/130", "2026-11-25")]
    with session_scope(console.engine) as session:
        tool = session.execute(select(Tool.name).join(Vote, Vote.tool_id == Tool.id)).scalar_one()
    assert [v["tool"] for v in body["votes"]] == [tool]
    missing = console.client().get("/api/v1/readers/999999", headers=console.bearer("read"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    huge = console.client().get(f"/api/v1/readers/{2**40}", headers=console.bearer("read"))
    assert huge.status_code == 422 and "reader_id" in huge.json()["error"]["fields"]


def test_unsubscribe_through_the_api_is_the_one_click_unsubscribe_and_audited(console):
    reader_id = make_reader(console.engine)
    client, headers = console.client(), console.bearer("readers")
    answer = client.post(f"/api/v1/readers/{reader_id}/status", json={"status": "unsubscribed"}, headers=headers)
    assert answer.status_code == 200 and answer.json() == {"id": reader_id, "status": "unsubscribed", "changed": True,
                                                           "confirmation_queued": False}
    again = client.post(f"/api/v1/readers/{reader_id}/status", json={"status": "unsubscribed"}, headers=headers)
    assert again.json()["changed"] is False
    with session_scope(console.engine) as session:
        reader = session.get(Subscriber, reader_id)
        events = session.execute(select(ConsentEvent.kind, ConsentEvent.source, ConsentEvent.detail).where(
            ConsentEvent.subscriber_id == reader_id, ConsentEvent.kind == "unsubscribed")).all()
        mails = session.execute(select(TransactionalMail.kind).where(TransactionalMail.subscriber_id == reader_id)).all()
        entries = session.execute(select(AuditEntry).where(AuditEntry.action == "reader.unsubscribe")).scalars().all()
    assert reader.status == "unsubscribed" and reader.unsubscribed_at is not None
    assert events == [("unsubscribed", "editor", "by token:token-readers")]
    assert mails == []  # like the one-click unsubscribe: no goodbye mail
    assert len(entries) == 1 and entries[0].target == f"reader:{reader_id}"
    assert (entries[0].before["status"], entries[0].after["status"]) == ("active", "unsubscribed")
    bad = client.post(f"/api/v1/readers/{reader_id}/status", json={"status": "bounced"}, headers=headers)
    assert bad.status_code == 422 and "status" in bad.json()["error"]["fields"]


def test_resubscribe_queues_a_confirmation_and_does_not_activate(console):
    reader_id = make_reader(console.engine, status="unsubscribed")
    client, headers = console.client(), console.bearer("readers")
    answer = client.post(f"/api/v1/readers/{reader_id}/status", json={"status": "active"}, headers=headers)
    assert answer.status_code == 202 and answer.json()["status"] == "unsubscribed"
    assert answer.json()["confirmation_queued"] is True
    with session_scope(console.engine) as session:
        reader = session.get(Subscriber, reader_id)
        mails = session.execute(select(TransactionalMail.kind, TransactionalMail.to_email).where(
            TransactionalMail.subscriber_id == reader_id)).all()
        kinds = session.execute(select(ConsentEvent.kind).where(ConsentEvent.subscriber_id == reader_id)).scalars().all()
        audited = session.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "reader.resubscribe_requested")).scalar_one()
    assert reader.status == "unsubscribed"  # only the reader's click activates
    assert mails == [("confirm", EMAIL)] and "resubscribe_requested" in kinds and audited == 1
    throttled = client.post(f"/api/v1/readers/{reader_id}/status", json={"status": "active"}, headers=headers)
    assert throttled.status_code == 409 and throttled.json()["error"]["code"] == "not_possible"
    active = make_reader(console.engine, "active.one@example.com")
    refused = client.post(f"/api/v1/readers/{active}/status", json={"status": "active"}, headers=headers)
    assert refused.status_code == 409 and "already active" in refused.json()["error"]["message"]


def test_a_suppressed_reader_gets_no_confirmation(console):
    reader_id = make_reader(console.engine, status="bounced")
    with session_scope(console.engine) as session:
        session.add(Suppression(email=EMAIL, reason="hard_bounce"))
    answer = console.client().post(f"/api/v1/readers/{reader_id}/status", json={"status": "active"},
                                   headers=console.bearer("readers"))
    assert answer.status_code == 409
    with session_scope(console.engine) as session:
        assert session.execute(select(TransactionalMail)).first() is None


def test_forget_erases_everything_and_keeps_only_the_hash(console):
    reader_id = make_reader(console.engine)
    client, headers = console.client(), console.bearer("readers")
    client.post(f"/api/v1/readers/{reader_id}/status", json={"status": "unsubscribed"}, headers=headers)
    answer = client.post(f"/api/v1/readers/{reader_id}/forget", headers=headers)
    assert answer.status_code == 200 and answer.json()["erased"]["deliveries"] == 1
    assert answer.json()["erased"]["votes"] == 1
    with session_scope(console.engine) as session:
        assert session.get(Subscriber, reader_id) is None
        for table in (Delivery, Vote, ConsentEvent):
            assert session.execute(select(func.count()).select_from(table)).scalar_one() == 0
        assert is_suppressed(session, EMAIL)
        assert session.execute(select(Suppression.email)).scalars().all() == [hashed_email(EMAIL)]
        entries = session.execute(select(AuditEntry).where(AuditEntry.action.like("reader.%"))).scalars().all()
    assert [e.action for e in entries] == ["reader.unsubscribe", "reader.forget"]
    assert all(EMAIL not in repr((e.target, e.before, e.after, e.detail)) for e in entries)  # erased from the log too
    assert client.post(f"/api/v1/readers/{reader_id}/forget", headers=headers).status_code == 404
    assert client.get(f"/api/v1/readers/{reader_id}", headers=console.bearer("read")).status_code == 404


def test_the_console_reader_page_and_its_actions(console):
    reader_id = make_reader(console.engine)
    editor = console.login("editor")
    page = editor.get(f"/admin/readers/{reader_id}")
    assert page.status_code == 200
    for shown in (EMAIL, "2026-W48", "prov-123", "203.0.113.7", "Firefox/130", "2026-11-25", "Unsubscribe"):
        assert shown in page.text, shown
    token = csrf_in(page.text)
    assert editor.post(f"/admin/readers/{reader_id}/unsubscribe", data={"csrf_token": "forged"}).status_code == 403
    assert editor.post(f"/admin/readers/{reader_id}/unsubscribe", data={}).status_code == 403
    done = editor.post(f"/admin/readers/{reader_id}/unsubscribe", data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == f"/admin/readers/{reader_id}?done=unsubscribed"
    after = editor.get(done.headers["location"])
    assert "Unsubscribed. No more issues" in after.text and "Send a fresh confirmation" in after.text
    sent = editor.post(f"/admin/readers/{reader_id}/resubscribe", data={"csrf_token": token})
    assert sent.status_code == 303
    again = editor.post(f"/admin/readers/{reader_id}/resubscribe", data={"csrf_token": token})
    assert again.status_code == 409 and "short while ago" in again.text
    with session_scope(console.engine) as session:
        assert session.get(Subscriber, reader_id).status == "unsubscribed"
    confirm = editor.get(f"/admin/readers/{reader_id}/forget")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    gone = editor.post(f"/admin/readers/{reader_id}/forget", data={"csrf_token": token})
    assert gone.status_code == 200 and "Forgotten" in gone.text
    assert editor.get(f"/admin/readers/{reader_id}").status_code == 404


def test_a_viewer_reads_but_cannot_act(console):
    reader_id = make_reader(console.engine)
    viewer = console.login("viewer")
    page = viewer.get(f"/admin/readers/{reader_id}")
    assert page.status_code == 200 and "Unsubscribe</button>" not in page.text and "Forget" not in page.text
    token = csrf_in(page.text)
    for action in ("unsubscribe", "resubscribe", "forget"):
        assert viewer.post(f"/admin/readers/{reader_id}/{action}", data={"csrf_token": token}).status_code == 403
    assert viewer.get(f"/admin/readers/{reader_id}/forget").status_code == 403
    for bad in ("/admin/readers?contains=maybe", "/admin/readers/abc", f"/admin/readers/{2**40}",
                "/admin/readers?q=%00", "/admin/suppressions?after=%1f"):
        answer = viewer.get(bad)
        assert 400 <= answer.status_code < 500 and "Traceback" not in answer.text, (bad, answer.status_code)
    with session_scope(console.engine) as session:
        assert session.get(Subscriber, reader_id).status == "active"
