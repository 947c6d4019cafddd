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
         ("/admin/readers/import", Role.editor)]
# API routes: (method, path, body, scope that suffices besides "all", status when allowed).
API = [
    ("GET", "/api/v1/issues", None, Scope.read, 200),
    ("GET", "/api/v1/readers?q=a", None, Scope.read, 200),
    ("PUT", "/api/v1/comparisons/alpha-vs-beta", SAMPLE_COMPARISON, Scope.comparisons, (200, 201)),
    # A JSON body is not a CSV: 415 once the scope allows it (test_import_api.py sends real files).
    ("POST", "/api/v1/readers/imports", {"email": "a@example.com"}, Scope.readers, 415),
    ("GET", "/api/v1/readers/imports/1", None, Scope.read, 404),  # allowed: no such job yet
]


@pytest.mark.parametrize("path,least", PAGES)
def test_pages_by_role(console, path, least):
    anonymous = console.client().get(path)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login"
    for role in Role:
        answer = console.login(role.name).get(path)
        expected = 200 if role >= least else 403
        assert answer.status_code == expected, f"{role.name} on {path}: {answer.status_code}"
        assert ("Sign out" in answer.text) == (expected == 200)


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
