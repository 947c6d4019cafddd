"""The REST API from the outside: pagination, reader search, comparisons in the import schema
(created, updated, validated, audited), and the public signup with every defence of the form."""

from __future__ import annotations

import copy

from sqlalchemy import select

from newsletter.content.models import Comparison, Tool
from newsletter.db import session_scope
from newsletter.editors.models import ApiToken, AuditEntry
from newsletter.issues.models import Issue
from newsletter.subscribers.models import ConsentEvent, Subscriber, TransactionalMail
from tests.console.test_authorization import SAMPLE_COMPARISON


def _issues(engine, count: int) -> None:
    with session_scope(engine) as session:
        for week in range(1, count + 1):
            session.add(Issue(week=f"2026-W{week:02d}", subject=f"Issue of week {week}"))


def _readers(engine, emails_and_names) -> None:
    with session_scope(engine) as session:
        for email, name in emails_and_names:
            session.add(Subscriber(email=email, name=name, status="active"))


def test_issues_page_by_cursor_without_gaps_or_repeats(console):
    _issues(console.engine, 7)
    client, seen, cursor = console.client(), [], ""
    while True:
        page = client.get("/api/v1/issues", params={"limit": 3, "cursor": cursor}, headers=console.bearer("read"))
        assert page.status_code == 200
        body = page.json()
        seen += [item["week"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"2026-W{week:02d}" for week in range(7, 0, -1)]
    bad = client.get("/api/v1/issues", params={"cursor": "bm90LWpzb24"}, headers=console.bearer("read"))
    assert bad.status_code == 422 and "cursor" in bad.json()["error"]["fields"]
    too_many = client.get("/api/v1/issues", params={"limit": 1000}, headers=console.bearer("read"))
    assert too_many.status_code == 422 and too_many.json()["error"]["fields"].keys() == {"limit"}


def test_readers_by_address_or_name_prefix_with_keyset_pages(console):
    _readers(console.engine, [("ann@example.com", "Zoe Ann"), ("anna@example.org", ""), ("bob@example.com", "Annika B"),
                              ("carl@example.net", "Carl"), ("x_y@example.com", "Percent%Name")])
    client = console.client()

    def search(q, **params):
        answer = client.get("/api/v1/readers", params={"q": q, **params}, headers=console.bearer("read"))
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert [r["email"] for r in search("ann")["items"]] == ["ann@example.com", "anna@example.org", "bob@example.com"]
    first = search("ANN", limit=2)
    assert [r["email"] for r in first["items"]] == ["ann@example.com", "anna@example.org"]
    rest = search("ANN", limit=2, cursor=first["next_cursor"])
    assert [r["email"] for r in rest["items"]] == ["bob@example.com"] and rest["next_cursor"] is None
    assert search("%")["items"] == [] and search("_")["items"] == []  # wildcards are literal
    assert [r["email"] for r in search("x_")["items"]] == ["x_y@example.com"]
    assert len(search("")["items"]) == 5


def test_control_characters_in_a_search_or_cursor_are_a_422_not_a_500(console):
    """PostgreSQL refuses NUL in text: schemathesis once found `q=%00` answered 500 there."""
    from newsletter.web.console.api_base import encode_cursor

    client = console.client()
    for params in ({"q": "a\x00b"}, {"q": "\x1f"}, {"cursor": encode_cursor({"email": "a\x00"})}):
        answer = client.get("/api/v1/readers", params=params, headers=console.bearer("read"))
        assert answer.status_code == 422, (params, answer.status_code, answer.text)
        assert answer.json()["error"]["code"]


def test_put_comparison_creates_then_updates_and_is_audited(console):
    client = console.client()
    created = client.put("/api/v1/comparisons/alpha-vs-beta", json=SAMPLE_COMPARISON, headers=console.bearer("comparisons"))
    assert created.status_code == 201 and created.json() == {"slug": "alpha-vs-beta", "created": True}
    changed = copy.deepcopy(SAMPLE_COMPARISON)
    changed["title"] = "Alpha vs Beta, revisited"
    changed["tools"][1]["entry_price"] = "$12/month"
    updated = client.put("/api/v1/comparisons/alpha-vs-beta", json=changed, headers=console.bearer("all"))
    assert updated.status_code == 200 and updated.json()["created"] is False
    with session_scope(console.engine) as session:
        comparison = session.execute(select(Comparison).where(Comparison.slug == "alpha-vs-beta")).scalar_one()
        beta = session.execute(select(Tool).where(Tool.slug == "beta")).scalar_one()
        entries = session.execute(select(AuditEntry).where(AuditEntry.action == "comparison.put")
                                  .order_by(AuditEntry.id)).scalars().all()
        used = session.execute(select(ApiToken.last_used_at).where(ApiToken.name == "token-comparisons")).scalar()
    assert comparison.title == "Alpha vs Beta, revisited" and beta.entry_price == "$12/month"
    assert [(e.actor, e.before is None) for e in entries] == [("token:token-comparisons", True), ("token:token-all", False)]
    assert entries[1].before["title"] == "Alpha vs Beta" and entries[1].after["title"] == "Alpha vs Beta, revisited"
    assert entries[1].before["tools"] == ["alpha", "beta"]
    assert used is not None


def test_put_comparison_refuses_what_the_import_refuses(console):
    client, headers = console.client(), console.bearer("all")
    bad = copy.deepcopy(SAMPLE_COMPARISON)
    bad["tools"][0]["name"] = ""
    bad["reviews"][0]["tool"] = "gamma"
    bad["extra"] = 1
    answer = client.put("/api/v1/comparisons/alpha-vs-beta", json=bad, headers=headers)
    assert answer.status_code == 422
    fields = answer.json()["error"]["fields"]
    assert "tools.0.name" in fields and "extra" in fields, fields
    mismatch = client.put("/api/v1/comparisons/other-slug", json=SAMPLE_COMPARISON, headers=headers)
    assert mismatch.status_code == 422 and mismatch.json()["error"]["code"] == "slug_mismatch"
    not_json = client.put("/api/v1/comparisons/alpha-vs-beta", content=b"{", headers={**headers,
                                                                                      "Content-Type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["error"]["code"] == "invalid_request"
    with session_scope(console.engine) as session:
        assert session.execute(select(Comparison).where(Comparison.slug == "alpha-vs-beta")).first() is None
        assert session.execute(select(AuditEntry).where(AuditEntry.action == "comparison.put")).first() is None


def test_public_signup_is_the_forms_path_with_source_api(console):
    client = console.client()
    answers = [client.post("/api/v1/public/subscriptions", json=body, headers={"User-Agent": "SiteApp/1.0"})
               for body in ({"email": "new.reader@example.com", "name": "New Reader", "topics": ["Developer Tools"]},
                            {"email": "new.reader@example.com"})]
    assert [a.status_code for a in answers] == [202, 202] and answers[0].json() == answers[1].json()
    with session_scope(console.engine) as session:
        reader = session.execute(select(Subscriber).where(Subscriber.email == "new.reader@example.com")).scalar_one()
        events = session.execute(select(ConsentEvent).where(ConsentEvent.subscriber_id == reader.id)).scalars().all()
        mails = session.execute(select(TransactionalMail).where(TransactionalMail.subscriber_id == reader.id)).scalars().all()
    assert reader.status == "pending" and reader.name == "New Reader"  # double opt-in: not active yet
    assert {(e.kind, e.source, e.user_agent) for e in events} == {("signup_requested", "api", "SiteApp/1.0")}
    assert events[0].consent_version
    assert [m.kind for m in mails] == ["confirm"]  # one confirmation, not one per request
    for body, field in (({"email": "not-an-address"}, "email"), ({"email": "a@example.com", "topics": "x"}, "topics"),
                        ({"email": "a@example.com", "admin": True}, "admin"), ({"name": "No Address"}, "email")):
        invalid = client.post("/api/v1/public/subscriptions", json=body)
        assert invalid.status_code == 422 and field in invalid.json()["error"]["fields"], (body, invalid.text)


def test_public_signup_rate_limits_are_the_forms(console):
    client = console.client()
    codes = [client.post("/api/v1/public/subscriptions", json={"email": f"r{i}@example.com"}).status_code
             for i in range(console.settings.web.signups_per_ip_per_hour + 1)]
    assert codes[:-1] == [202] * console.settings.web.signups_per_ip_per_hour
    assert codes[-1] == 429
    # the form at / counts against the same limit
    form = client.post("/subscribe", data={"email": "s@example.com", "form_token": "x"})
    assert form.status_code in (400, 429)


def test_cors_only_for_configured_origins(tmp_path, db_url, monkeypatch, console):
    from newsletter.config import load_settings
    from newsletter.web.app import create_app
    from starlette.testclient import TestClient
    from tests.conftest import TEST_SECRET, write_config

    monkeypatch.setenv("NEWSLETTER_API__CORS_ORIGINS", '["https://www.publication.example"]')
    settings = load_settings(write_config(tmp_path, db_url))
    client = TestClient(create_app(settings, engine=console.engine, secret=TEST_SECRET, with_sender=False),
                        base_url="https://verdicts.example")
    url = "/api/v1/public/subscriptions"
    allowed = {"Origin": "https://www.publication.example"}
    preflight = client.options(url, headers={**allowed, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://www.publication.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    post = client.post(url, json={"email": "cors@example.com"}, headers=allowed)
    assert post.status_code == 202 and post.headers["access-control-allow-origin"] == allowed["Origin"]
    other = client.post(url, json={"email": "cors2@example.com"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in client.options(url, headers={"Origin": "https://evil.example"}).headers
    private = client.options("/api/v1/issues", headers=allowed)
    assert "access-control-allow-origin" not in private.headers


def test_unknown_api_routes_and_methods_answer_json(console):
    client = console.client()
    missing = client.get("/api/v1/nothing-here", headers=console.bearer("all"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = client.delete("/api/v1/issues", headers=console.bearer("all"))
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert "<html" in client.get("/no-such-page").text.lower()  # the site's pages stay HTML
