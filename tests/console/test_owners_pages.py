"""The owners' page /admin/editors: editors and API tokens managed from the browser, with the
rules of the CLI (the last owner stays), one-time secrets, CSRF and the audit log."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.editors import accounts, audit, totp
from newsletter.editors.models import ApiToken, AuditEntry, Editor
from tests.console.conftest import PASSWORD, csrf_in, role_email

# Every POST of the owners' pages, with a body that would succeed for an owner.
POSTS = [("/admin/editors/add", {"email": "new@editors.example", "role": "viewer"}),
         ("/admin/editors/role", {"email": "viewer@editors.example", "role": "reviewer"}),
         ("/admin/editors/remove", {"email": "viewer@editors.example"}),
         ("/admin/editors/totp-reset", {"email": "viewer@editors.example"}),
         ("/admin/tokens", {"name": "cms", "scopes": ["read"]}),
         ("/admin/tokens/revoke", {"token_id": "1"})]


def owner_post(client, path, data):
    token = csrf_in(client.get("/admin/editors").text)
    return client.post(path, data={**data, "csrf_token": token})


def audit_entries(engine, action):
    with session_scope(engine) as session:
        entries = list(session.exec(select(AuditEntry).where(AuditEntry.action == action)))
        session.expunge_all()
        return entries


def editor(engine, email):
    with session_scope(engine) as session:
        found = accounts.find(session, email)
        session.expunge_all()
        return found


@pytest.mark.parametrize("path,data", POSTS)
def test_every_post_is_for_owners_with_the_session_csrf(console, path, data):
    anonymous = console.client().post(path, data={**data, "csrf_token": "x"})
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/admin/login"
    for role in ("viewer", "reviewer", "editor"):
        client = console.login(role)
        token = csrf_in(client.get("/admin").text)
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 403, role
    with session_scope(console.engine) as session:  # something to reset
        totp.enable(session, accounts.find(session, role_email("viewer")), "WV", audit.Actor.cli())
    owner = console.login("owner")
    for forged in ({}, {"csrf_token": "forged"}):
        answer = owner.post(path, data={**data, **forged})
        assert answer.status_code == 403 and "form has expired" in answer.text
    assert owner_post(owner, path, data).status_code in (200, 303)


def test_an_owner_adds_an_editor_and_sees_the_link_once(console):
    owner = console.login("owner")
    answer = owner_post(owner, "/admin/editors/add", {"email": "New.Person@Editors.example", "role": "reviewer"})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    link = re.search(r"https://verdicts\.example/admin/set-password/[\w.\-]+", answer.text).group(0)
    assert "set-password" not in owner.get("/admin/editors").text  # never shown again
    path = link.removeprefix("https://verdicts.example")
    fresh = console.client()
    assert fresh.get(path).status_code == 200
    form = csrf_in(fresh.get(path).text)
    done = fresh.post(path, data={"password": PASSWORD, "password_repeat": PASSWORD, "csrf_token": form})
    assert done.status_code == 200
    assert console.login(email="new.person@editors.example").get("/admin").status_code == 200
    [entry] = audit_entries(console.engine, "editor.add")[-1:]
    assert entry.actor == "editor:owner@editors.example" and entry.after == {"role": "reviewer"}
    again = owner_post(owner, "/admin/editors/add", {"email": "new.person@editors.example", "role": "viewer"})
    assert again.status_code == 422 and "already an editor" in again.text
    bad = owner_post(owner, "/admin/editors/add", {"email": "not-an-address", "role": "boss"})
    assert bad.status_code == 422 and "Not added" in bad.text


def test_a_role_change_applies_at_the_next_click_and_is_audited(console):
    owner, reviewer = console.login("owner"), console.login("reviewer")
    answer = owner_post(owner, "/admin/editors/role", {"email": role_email("reviewer"), "role": "owner"})
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/editors?done=role"
    assert "The role is changed" in owner.get(answer.headers["location"]).text
    assert reviewer.get("/admin/editors").status_code == 200  # the same session, the new role
    [entry] = audit_entries(console.engine, "editor.role")
    assert (entry.before, entry.after) == ({"role": "reviewer"}, {"role": "owner"})
    refused = owner_post(owner, "/admin/editors/role", {"email": role_email("viewer"), "role": "king"})
    assert refused.status_code == 422 and "role must be one of" in refused.text


def test_the_last_owner_can_be_neither_demoted_nor_removed(console):
    owner = console.login("owner")
    for path, data in (("/admin/editors/role", {"email": role_email("owner"), "role": "editor"}),
                       ("/admin/editors/remove", {"email": role_email("owner")})):
        answer = owner_post(owner, path, data)
        assert answer.status_code == 422 and "last owner" in answer.text
    assert editor(console.engine, role_email("owner")).role == "owner"
    # With a second owner, the first may step down.
    assert owner_post(owner, "/admin/editors/role", {"email": role_email("editor"), "role": "owner"}).status_code == 303
    assert owner_post(owner, "/admin/editors/role", {"email": role_email("owner"), "role": "editor"}).status_code == 303
    assert owner.get("/admin/editors").status_code == 403  # no longer an owner
    with session_scope(console.engine) as session, pytest.raises(accounts.AccountError, match="last owner"):
        accounts.remove_editor(session, role_email("editor"), audit.Actor.cli())  # the CLI obeys it too


def test_removing_an_editor_ends_their_sessions(console):
    owner, viewer = console.login("owner"), console.login("viewer")
    assert viewer.get("/admin").status_code == 200
    answer = owner_post(owner, "/admin/editors/remove", {"email": role_email("viewer")})
    assert answer.status_code == 303
    assert viewer.get("/admin").status_code == 303  # signed out
    assert console.post_login(console.client(), role_email("viewer"), PASSWORD).status_code == 400
    [entry] = audit_entries(console.engine, "editor.remove")
    assert entry.before == {"role": "viewer"} and entry.after is None
    assert owner_post(owner, "/admin/editors/remove", {"email": role_email("viewer")}).status_code == 422


def test_an_owner_resets_two_factor(console):
    with session_scope(console.engine) as session:
        totp.enable(session, accounts.find(session, role_email("editor")), "WV", audit.Actor.cli())
    owner = console.login("owner")
    assert "Reset two-factor for editor@editors.example" in owner.get("/admin/editors").text
    assert owner_post(owner, "/admin/editors/totp-reset", {"email": role_email("editor")}).status_code == 303
    assert editor(console.engine, role_email("editor")).totp_secret is None
    [entry] = audit_entries(console.engine, "editor.totp_disable")
    assert (entry.before, entry.after) == ({"two_factor": True}, {"two_factor": False})
    again = owner_post(owner, "/admin/editors/totp-reset", {"email": role_email("editor")})
    assert again.status_code == 422 and "no two-factor" in again.text


def test_a_token_is_shown_once_used_and_revoked(console):
    owner = console.login("owner")
    answer = owner_post(owner, "/admin/tokens", {"name": "site cms", "scopes": ["read", "comparisons"]})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    raw = re.search(r"wv_[\w\-]+", answer.text).group(0)
    listing = owner.get("/admin/editors").text
    assert raw not in listing and "site cms" in listing
    with session_scope(console.engine) as session:
        stored = session.exec(select(ApiToken).where(ApiToken.name == "site cms")).one()
        assert stored.scopes == "read comparisons" and raw not in stored.token_hash
        token_id = stored.id
    api = console.client()
    assert api.get("/api/v1/issues", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    assert re.search(r"last used \d{4}-\d\d-\d\d \d\d:\d\d UTC", owner.get("/admin/editors").text)
    assert owner_post(owner, "/admin/tokens/revoke", {"token_id": str(token_id)}).status_code == 303
    assert api.get("/api/v1/issues", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    actions = [(e.action, e.target) for e in audit_entries(console.engine, "token.create")
               + audit_entries(console.engine, "token.revoke") if e.target == "token:site cms"]
    assert actions == [("token.create", "token:site cms"), ("token.revoke", "token:site cms")]


def test_a_token_form_names_what_is_wrong(console):
    owner = console.login("owner")
    for data, reason in (({"name": "", "scopes": ["read"]}, "name: 1 to 80"),
                         ({"name": "x", "scopes": []}, "scope: give at least one"),
                         ({"name": "x", "scopes": ["root"]}, "unknown scope"),
                         ({"name": "token-read", "scopes": ["read"]}, "exists")):
        answer = owner_post(owner, "/admin/tokens", data)
        assert answer.status_code == 422 and reason in answer.text, data
    with session_scope(console.engine) as session:
        assert session.exec(select(Editor)).first() is not None
