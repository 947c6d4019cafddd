"""Every console page and API route, asked anonymously, by each role (session) and with each
token scope: the answer each one gets is the one the permission table (roles.py) promises."""

from __future__ import annotations

import pytest

from newsletter.editors.roles import Role, Scope
from tests.console.conftest import csrf_in

SAMPLE_COMPARISON = {
    "slug": "alpha-vs-beta", "title": "Alpha vs Beta", "dek": "Which one should you ship with?",
    "published": "2026-11-24",
    "tools": [
        {"slug": "alpha", "name": "Alpha", "category": "Developer Tools", "tagline": "First of two.",
         "description": "Alpha does the first thing well.", "entry_price": "Free"},
        {"slug": "beta", "name": "Beta", "category": "Developer Tools", "tagline": "Second of two.",
         "description": "Beta does the second thing well.", "entry_price": "$10/month"},
    ],
    "reviews": [{"tool": "alpha", "lens": "developer_experience", "reviewer": "Ada", "verdict": "ship",
                 "quote": "It does what it says."}],
}

# Console pages: (path, least role). Anonymous visitors are sent to the login page.
PAGES = [("/admin", Role.viewer), ("/admin/audit", Role.viewer), ("/admin/editors", Role.owner),
         ("/admin/settings", Role.owner), ("/admin/webhooks", Role.owner),
         ("/admin/readers?q=a", Role.viewer), ("/admin/readers/1", Role.viewer), ("/admin/suppressions", Role.viewer),
         ("/admin/readers/1/forget", Role.editor), ("/admin/readers/import", Role.editor),
         ("/admin/comparisons", Role.viewer), ("/admin/comparisons/cursor-vs-windsurf", Role.viewer),
         ("/admin/comparisons/new", Role.reviewer), ("/admin/comparisons/cursor-vs-windsurf/history", Role.viewer)]
# Statistics (read-only: every role); issue 1 may not exist, the page then answers 404 (see below).
PAGES += [("/admin/stats", Role.viewer), ("/admin/stats/comparisons", Role.viewer)]
DOWNLOADS = ["/admin/stats/issues.csv", "/admin/stats/comparisons.csv"]
# API routes: (method, path, body, scope that suffices besides "all", status when allowed).
API = [
    ("GET", "/api/v1/issues", None, Scope.read, 200),
    ("GET", "/api/v1/readers?q=a", None, Scope.read, 200),
    ("GET", "/api/v1/audit", None, Scope.read, 200),
    ("PUT", "/api/v1/comparisons/alpha-vs-beta", SAMPLE_COMPARISON, Scope.comparisons, (200, 201)),
    ("GET", "/api/v1/readers/1", None, Scope.read, 200),
    ("GET", "/api/v1/readers/export", None, Scope.read, 200),
    ("GET", "/api/v1/suppressions", None, Scope.read, 200),
    ("POST", "/api/v1/readers/1/status", {"status": "unsubscribed"}, Scope.readers, 200),
    # The first allowed scope forgets reader 1; the next finds nobody left to forget.
    ("POST", "/api/v1/readers/1/forget", None, Scope.readers, (200, 404)),
    ("GET", "/api/v1/stats", None, Scope.read, 200),
    ("GET", "/api/v1/stats/issues/1", None, Scope.read, 404),  # the sample has no sent issue: figures 404
    ("GET", "/api/v1/stats/comparisons", None, Scope.read, 200),
    ("GET", "/api/v1/comparisons?q=cursor", None, Scope.read, 200),
    ("GET", "/api/v1/comparisons/cursor-vs-windsurf", None, Scope.read, 200),
    ("GET", "/api/v1/comparisons/cursor-vs-windsurf/community", None, Scope.read, 200),
    ("GET", "/api/v1/comparisons/cursor-vs-windsurf/revisions", None, Scope.read, 200),
    ("POST", "/api/v1/comparisons/cursor-vs-windsurf/unpublish", None, Scope.comparisons, 200),
    ("POST", "/api/v1/comparisons/cursor-vs-windsurf/publish", None, Scope.comparisons, 200),
    # A JSON body is not a CSV: 415 once the scope allows it (test_import_api.py sends real files).
    ("POST", "/api/v1/readers/imports", {"email": "a@example.com"}, Scope.readers, 415),
    ("GET", "/api/v1/readers/imports/1", None, Scope.read, 404),  # allowed: no such job yet
]


@pytest.fixture(autouse=True)
def _reader_one(console):
    """Reader 1, for the routes that name one."""
    from newsletter.db import session_scope
    from newsletter.subscribers.models import Subscriber

    with session_scope(console.engine) as session:
        reader = Subscriber(email="reader.one@example.com", name="Reader One", status="active")
        session.add(reader)
        session.flush()
        assert reader.id == 1  # the first reader of a fresh database (an explicit id would leave PostgreSQL's sequence behind)


# Console POSTs: (path, least role). Each must also refuse a missing or forged CSRF token.
POSTS = [("/admin/readers/1/unsubscribe", Role.editor), ("/admin/readers/1/resubscribe", Role.editor),
         ("/admin/readers/1/forget", Role.editor), ("/admin/comparisons/cursor-vs-windsurf/checked", Role.reviewer)]


@pytest.mark.parametrize("path,least", POSTS)
def test_console_posts_by_role_and_csrf(console, path, least):
    anonymous = console.client().post(path, data={"csrf_token": "x"})
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login"
    for role in sorted(Role, reverse=True):
        client = console.login(role.name)
        token = csrf_in(client.get("/admin").text)
        if role < least:
            assert client.post(path, data={"csrf_token": token}).status_code == 403, role.name
            continue
        assert client.post(path, data={}).status_code == 403
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 403
    # An allowed role with the right token acts (the forget then leaves nothing to act on).
    owner = console.login("owner")
    answer = owner.post(path, data={"csrf_token": csrf_in(owner.get("/admin").text)})
    assert answer.status_code in (200, 303, 409), answer.text


def test_pages_by_role(console):
    """Every page for every role, each role signed in once: GETs change nothing, so one database
    serves them all (a failure names the page and the role)."""
    clients = {role: console.login(role.name) for role in Role}
    for path, least in PAGES:
        anonymous = console.client().get(path)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login", path
        for role, client in clients.items():
            answer = client.get(path)
            expected = 200 if role >= least else 403
            assert answer.status_code == expected, f"{role.name} on {path}: {answer.status_code}"
            assert ("Sign out" in answer.text) == (expected == 200), f"{role.name} on {path}"


def test_stats_downloads_and_issue_page_by_role(console):
    """CSV downloads and an issue's figures: every signed-in role, nobody anonymous."""
    clients = {role: console.login(role.name) for role in Role}
    for path in DOWNLOADS + ["/admin/stats/issues/1"]:
        anonymous = console.client().get(path)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login", path
        for role, client in clients.items():
            answer = client.get(path)
            if path.endswith(".csv"):
                assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv"), (path, role)
            else:
                assert answer.status_code == 404 and "No figures for this issue" in answer.text, (path, role)


@pytest.mark.parametrize("method,path,body,scope,allowed", API)
def test_api_by_scope(console, method, path, body, scope, allowed):
    def call(headers):
        return console.client().request(method, path, headers=headers, json=body)

    for headers in ({}, {"Authorization": "Bearer wv_not-a-token"}, {"Authorization": "Basic eDp5"}):
        answer = call(headers)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")
    for granted in Scope:
        answer = call(console.bearer(granted.value))
        ok = granted in (scope, Scope.all)
        statuses = allowed if isinstance(allowed, tuple) else (allowed,)
        if ok:
            assert answer.status_code in statuses, f"{granted} on {method} {path}: {answer.text}"
        else:
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden", answer.text


def test_a_console_session_is_no_api_token(console):
    """The API takes bearer tokens only: an owner's console cookie opens nothing under /api/v1."""
    owner = console.login("owner")
    assert owner.get("/api/v1/issues").status_code == 401


def test_the_public_signup_needs_no_token(console):
    answer = console.client().post("/api/v1/public/subscriptions", json={"email": "new.reader@example.com"})
    assert answer.status_code == 202


def test_a_revoked_token_and_a_removed_editor_lose_access(console):
    from newsletter.db import session_scope
    from newsletter.editors import accounts, audit, tokens

    editor = console.login("editor")
    assert editor.get("/admin").status_code == 200
    with session_scope(console.engine) as session:
        tokens.revoke(session, "token-all", audit.Actor.cli())
        accounts.remove_editor(session, "editor@editors.example", audit.Actor.cli())
    assert console.client().get("/api/v1/issues", headers=console.bearer("all")).status_code == 401
    assert editor.get("/admin").status_code == 303
    again = console.client()
    assert console.post_login(again, "editor@editors.example", "a long and sturdy passphrase").status_code == 400


def test_logout_needs_the_sessions_csrf_token(console):
    owner = console.login("owner")
    token = csrf_in(owner.get("/admin").text)
    assert owner.post("/admin/logout", data={"csrf_token": "forged"}).status_code == 403
    assert owner.get("/admin").status_code == 200  # still signed in
    assert owner.post("/admin/logout", data={"csrf_token": token}).status_code == 303
    assert owner.get("/admin").status_code == 303


# --- Issues (console pages, console POSTs, API): on an existing draft, `{id}` ------------------
ISSUE_PAGES = [("/admin/issues", Role.viewer), ("/admin/issues/{id}", Role.viewer),
               ("/admin/issues/{id}/preview?scheme=dark", Role.viewer),
               ("/admin/issues/{id}/preview?format=text", Role.viewer),
               ("/admin/issues/{id}/progress", Role.viewer), ("/admin/issues/{id}/events?limit=1", Role.viewer),
               ("/admin/issues/{id}/send", Role.editor)]
ISSUE_POSTS = ["/admin/issues", "/admin/issues/{id}/edit", "/admin/issues/{id}/comparisons",
               "/admin/issues/{id}/test", "/admin/issues/{id}/schedule", "/admin/issues/{id}/unschedule",
               "/admin/issues/{id}/send", "/admin/issues/{id}/pause", "/admin/issues/{id}/resume",
               "/admin/issues/{id}/cancel"]
# In this order on one issue, so a later action may meet the state an earlier one left (409).
ISSUE_API = [
    ("GET", "/api/v1/issues/{id}", None, Scope.read, (200,)),
    ("GET", "/api/v1/issues/{id}/preview.html", None, Scope.read, (200,)),
    ("GET", "/api/v1/issues/{id}/preview.txt", None, Scope.read, (200,)),
    ("GET", "/api/v1/issues/{id}/checks", None, Scope.read, (200,)),
    ("GET", "/api/v1/issues/{id}/status", None, Scope.read, (200,)),
    ("POST", "/api/v1/issues", {"week": "2026-W48"}, Scope.issues, (200,)),
    ("PATCH", "/api/v1/issues/{id}", {"subject": "A new subject"}, Scope.issues, (200,)),
    ("POST", "/api/v1/issues/{id}/test", {"to": ["chief@verdicts.example"]}, Scope.issues, (200,)),
    ("POST", "/api/v1/issues/{id}/schedule", {"at": "2031-03-04 07:30", "ignore_checks": True}, Scope.issues, (200,)),
    ("POST", "/api/v1/issues/{id}/unschedule", None, Scope.issues, (200, 409)),
    ("POST", "/api/v1/issues/{id}/send", {"ignore_checks": True}, Scope.issues, (200, 409)),
    ("POST", "/api/v1/issues/{id}/pause", None, Scope.issues, (200, 409)),
    ("POST", "/api/v1/issues/{id}/resume", None, Scope.issues, (200, 409)),
    ("POST", "/api/v1/issues/{id}/cancel", None, Scope.issues, (200, 409)),
    ("PUT", "/api/v1/issues/{id}/comparisons", {"comparisons": []}, Scope.issues, (409,)),
]


def _draft(console) -> int:
    from newsletter.issues.drafting import draft_issue

    return draft_issue(console.engine, console.settings, "2026-W48").issue.id


def test_issue_pages_by_role(console):
    issue_id = _draft(console)
    clients = {role: console.login(role.name) for role in Role}
    for template, least in ISSUE_PAGES:
        path = template.format(id=issue_id)
        anonymous = console.client().get(path)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login", path
        for role, client in clients.items():
            answer = client.get(path)
            assert answer.status_code == (200 if role >= least else 403), f"{role.name} on {path}"


def test_issue_posts_need_a_session_the_role_and_the_csrf_token(console):
    issue_id = _draft(console)
    clients = {role: console.login(role.name) for role in Role}
    tokens = {role: csrf_in(client.get("/admin").text) for role, client in clients.items()}
    for template in ISSUE_POSTS:
        path = template.format(id=issue_id)
        anonymous = console.client().post(path, data={"csrf_token": "x"})
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login", path
        for role in (Role.viewer, Role.reviewer):
            assert clients[role].post(path, data={"csrf_token": tokens[role]}).status_code == 403, (role, path)
        editor = clients[Role.editor]
        for forged in ({}, {"csrf_token": "forged"}, {"csrf_token": tokens[Role.owner]}):
            assert editor.post(path, data=forged).status_code == 403, (path, forged)
    with_token = clients[Role.editor].post(f"/admin/issues/{issue_id}/edit",
                                           data={"subject": "Edited", "csrf_token": tokens[Role.editor]})
    assert with_token.status_code == 303


def test_issue_api_by_scope(console):
    issue_id = _draft(console)
    for method, template, body, scope, allowed in ISSUE_API:
        path = template.format(id=issue_id)

        def call(headers):
            return console.client().request(method, path, headers=headers, json=body)

        assert call({}).status_code == 401, path
        for granted in Scope:
            if granted not in (scope, Scope.all):
                answer = call(console.bearer(granted.value))
                assert answer.status_code == 403 and answer.json()["error"]["code"] == "forbidden", (granted, path)
        for granted in (scope, Scope.all):
            answer = call(console.bearer(granted.value))
            assert answer.status_code in allowed, f"{granted} on {method} {path}: {answer.text}"


# --- Follow-ups (editors and owners only): on a follow-up `{id}` of a sent issue's comparison `{slug}` ---
FOLLOWUP_PAGES = [("/admin/followups", Role.editor), ("/admin/followups/new?comparison={slug}", Role.editor),
                  ("/admin/followups/{id}", Role.editor), ("/admin/followups/{id}/preview?scheme=dark", Role.editor),
                  ("/admin/followups/{id}/preview?format=text", Role.editor), ("/admin/followups/{id}/send", Role.editor)]
FOLLOWUP_POSTS = ["/admin/followups", "/admin/followups/{id}/send", "/admin/followups/{id}/cancel"]


def _followup(console) -> tuple[int, str]:
    """A sent issue (reader 1 was sent it) and a forced draft follow-up about its first comparison."""
    from newsletter.db import session_scope
    from newsletter.delivery.sender import start_send
    from newsletter.editors.audit import Actor
    from newsletter.workflow import followups

    issue_id = _draft(console)
    start_send(console.engine, issue_id, settings=console.settings)
    with session_scope(console.engine) as session:
        from newsletter.issues.frozen import issue_view
        from newsletter.issues.models import Issue

        slug = issue_view(session, console.settings, session.get(Issue, issue_id)).comparisons[0].slug
    return followups.create(console.engine, console.settings, Actor.cli(), slug, force=True).id, slug


def test_followup_pages_and_posts_by_role_and_csrf(console):
    followup_id, slug = _followup(console)
    clients = {role: console.login(role.name) for role in Role}
    tokens = {role: csrf_in(client.get("/admin").text) for role, client in clients.items()}
    for template, least in FOLLOWUP_PAGES:
        path = template.format(id=followup_id, slug=slug)
        anonymous = console.client().get(path)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login", path
        for role, client in clients.items():
            assert client.get(path).status_code == (200 if role >= least else 403), f"{role.name} on {path}"
    for template in FOLLOWUP_POSTS:
        path = template.format(id=followup_id)
        anonymous = console.client().post(path, data={"csrf_token": "x"})
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login", path
        for role in (Role.viewer, Role.reviewer):
            assert clients[role].post(path, data={"csrf_token": tokens[role]}).status_code == 403, (role, path)
        for role in (Role.editor, Role.owner):
            for forged in ({}, {"csrf_token": "forged"}):
                assert clients[role].post(path, data=forged).status_code == 403, (role, path, forged)
    # The owner, with the session's token, acts.
    cancelled = clients[Role.owner].post(f"/admin/followups/{followup_id}/cancel",
                                         data={"csrf_token": tokens[Role.owner]})
    assert cancelled.status_code == 303


# --- Every route is in the matrix --------------------------------------------------------------
# Routes whose per-role answers are checked in their area's own tests (with the file that does),
# and the routes every visitor may reach by design.
ELSEWHERE = {
    "GET /admin/login": "open by design (tests/console/test_sessions.py)",
    "POST /admin/login": "open by design (test_sessions.py)", "POST /admin/login/totp": "open (test_sessions.py)",
    "POST /admin/logout": "test_logout_needs_the_sessions_csrf_token above",
    "GET /admin/set-password/{token}": "the signed link is the credential (test_sessions.py)",
    "POST /admin/set-password/{token}": "the signed link is the credential (test_sessions.py)",
    "GET /admin/static/issue-progress.js": "a static script, the same for everyone",
    "POST /api/v1/public/subscriptions": "public by design (test_api.py)",
    "POST /admin/editors/add": "test_owners_pages.py", "POST /admin/editors/role": "test_owners_pages.py",
    "POST /admin/editors/remove": "test_owners_pages.py", "POST /admin/editors/totp-reset": "test_owners_pages.py",
    "POST /admin/tokens": "test_owners_pages.py", "POST /admin/tokens/revoke": "test_owners_pages.py",
    "POST /admin/webhooks": "test_owners_webhooks.py",
    "POST /admin/webhooks/{endpoint_id}/remove": "test_owners_webhooks.py",
    "POST /admin/webhooks/{endpoint_id}/test": "test_owners_webhooks.py",
    "POST /admin/readers/import": "test_import_pages.py", "GET /admin/readers/import/{job_id}": "test_import_pages.py",
    "POST /admin/readers/import/{job_id}/dry-run": "test_import_pages.py",
    "POST /admin/readers/import/{job_id}/start": "test_import_pages.py",
    "POST /admin/comparisons/new": "test_comparisons_form.py", "POST /admin/comparisons/{slug}": "test_comparisons_form.py",
    "POST /admin/comparisons/{slug}/unpublish": "test_comparisons_form.py",
    "POST /admin/comparisons/{slug}/publish": "test_comparisons_form.py",
    "GET /admin/stats/issues/{issue_id}": "needs a sent issue (test_stats_pages.py)",
}


def _app_routes(app) -> set[str]:
    """"METHOD /path" of every console and API route (FastAPI keeps included routers nested)."""
    found = set()
    for route in app.routes:
        nested = getattr(route, "original_router", None)
        for inner in (nested.routes if nested is not None else [route]):
            path = getattr(inner, "path", "")
            if path.startswith(("/admin", "/api/v1")):
                found |= {f"{method} {path}" for method in getattr(inner, "methods", ()) or ()
                          if method not in ("HEAD", "OPTIONS")}
    return found


def _listed() -> list[tuple[str, str]]:
    """(method, concrete path) of every matrix row in this module."""
    rows = [("GET", path) for path, _role in PAGES + ISSUE_PAGES + FOLLOWUP_PAGES]
    rows += [("GET", path) for path in DOWNLOADS]
    rows += [("POST", path) for path, _role in POSTS] + [("POST", path) for path in ISSUE_POSTS + FOLLOWUP_POSTS]
    return rows + [(method, path) for method, path, *_rest in API + ISSUE_API]


def test_every_console_and_api_route_is_in_the_matrix(console):
    import re

    listed = _listed()
    missing = []
    for route in sorted(_app_routes(console.app)):
        method, template = route.split(" ", 1)
        pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/?]+", re.escape(template)) + r"(\?.*)?$")
        if route not in ELSEWHERE and not any(m == method and pattern.match(path) for m, path in listed):
            missing.append(route)
    assert not missing, "routes no authorization test covers (add a matrix row or an ELSEWHERE entry): " + \
        ", ".join(missing)
    assert not set(ELSEWHERE) - _app_routes(console.app), "ELSEWHERE names a route that no longer exists"
