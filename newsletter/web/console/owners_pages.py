"""The owners' page /admin/editors: add an editor (the set-password link is shown once), change
a role, remove an editor (their sessions end), reset two-factor; create an API token (the
token is shown once, on the answer page, and never again) and revoke one.

The rules live in newsletter/editors/ (accounts.py, tokens.py, totp.py), the same the CLI
(`newsletter editors`, `newsletter tokens`) uses, including "an owner cannot remove or demote
the last owner". Every POST checks the session's CSRF token and is audit-logged with
before/after in the change's transaction. A change answers with a redirect (reload-safe);
its note is named by a fixed key in the query, never by text from the request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.db import session_scope
from newsletter.editors import accounts, audit, tokens, totp
from newsletter.editors.passwords import WeakPassword
from newsletter.editors.roles import Role, Scope
from newsletter.web.console.deps import ConsoleContext, Console
from newsletter.web.console.views import Owner, check_csrf, console_router, page

router = console_router()
FormText = Annotated[str, Form(max_length=2000)]
FormList = Annotated[list[str], Form(max_length=20)]
DONE = {"role": "The role is changed; it applies from the editor's next click.",
        "removed": "The editor is removed and signed out everywhere.",
        "totp": "Two-factor sign-in is off for that editor; they can sign in with their password alone.",
        "revoked": "The token is revoked: requests with it are refused from now on."}
SCOPE_HINTS = {Scope.read: "every GET of the API", Scope.comparisons: "create, update and unpublish comparisons",
               Scope.issues: "draft, test, schedule and send issues", Scope.readers: "manage readers",
               Scope.all: "everything the API can do"}


def actor_of(me) -> audit.Actor:
    return audit.Actor(f"editor:{me.editor.email}", me.editor.id)


def editors_page(ctx: ConsoleContext, me, status: int = 200, error: str = "", done: str = "",
                 **values) -> HTMLResponse:
    with session_scope(ctx.engine) as session:
        editor_list, api_tokens = accounts.list_editors(session), tokens.list_tokens(session)
    return page(ctx, "editors.html", status, me=me, title="Editors and tokens", current="editors",
                editors=editor_list, tokens=api_tokens, roles=[role.name for role in Role],
                scopes=[(scope.value, SCOPE_HINTS[scope]) for scope in Scope], error=error,
                done=DONE.get(done, ""), **values)


def changed(done: str) -> RedirectResponse:
    return RedirectResponse(f"/admin/editors?done={done}", status_code=303)


@router.get("/editors", response_class=HTMLResponse)
def editors(ctx: Console, me: Owner, done: Annotated[str, Query(max_length=20)] = "") -> HTMLResponse:
    return editors_page(ctx, me, done=done)


@router.post("/editors/add", response_class=HTMLResponse)
def add_editor(ctx: Console, me: Owner, email: FormText = "", role: FormText = "",
               csrf_token: FormText = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        with session_scope(ctx.engine) as session:
            editor = accounts.add_editor(session, email, role, actor_of(me))
            link = accounts.set_password_token(ctx.secret, editor)
            added = {"email": editor.email, "role": editor.role}
    except (accounts.AccountError, ValueError) as exc:
        return editors_page(ctx, me, 422, f"Not added: {exc}", email=email[:254])
    return page(ctx, "editor_added.html", me=me, title="Editor added", current="editors", added=added,
                link=f"{ctx.settings.site.base_url}/admin/set-password/{link}",
                hours=ctx.settings.admin.set_password_hours)


def _change(ctx: ConsoleContext, me, csrf_token: str, action, done: str) -> Response:
    """Run one account change in one transaction: a redirect when done, the page with why not."""
    check_csrf(ctx, me, csrf_token)
    try:
        with session_scope(ctx.engine) as session:
            action(session)
    except (accounts.AccountError, tokens.TokenError, WeakPassword, ValueError) as exc:
        return editors_page(ctx, me, 422, f"Not changed: {exc}")
    return changed(done)


@router.post("/editors/role", response_class=HTMLResponse)
def change_role(ctx: Console, me: Owner, email: FormText = "", role: FormText = "",
                csrf_token: FormText = "") -> Response:
    return _change(ctx, me, csrf_token, lambda session: accounts.change_role(session, email, role, actor_of(me)),
                   "role")


@router.post("/editors/remove", response_class=HTMLResponse)
def remove_editor(ctx: Console, me: Owner, email: FormText = "", csrf_token: FormText = "") -> Response:
    return _change(ctx, me, csrf_token, lambda session: accounts.remove_editor(session, email, actor_of(me)),
                   "removed")


@router.post("/editors/totp-reset", response_class=HTMLResponse)
def reset_totp(ctx: Console, me: Owner, email: FormText = "", csrf_token: FormText = "") -> Response:
    def reset(session) -> None:
        editor = accounts.active_editor(session, email)
        if not editor.totp_secret:
            raise accounts.AccountError(f"{editor.email} has no two-factor sign-in to reset")
        totp.disable(session, editor, actor_of(me))
    return _change(ctx, me, csrf_token, reset, "totp")


@router.post("/tokens", response_class=HTMLResponse)
def create_token(ctx: Console, me: Owner, name: FormText = "", scopes: FormList = [],  # noqa: B006
                 csrf_token: FormText = "") -> Response:
    check_csrf(ctx, me, csrf_token)
    try:
        with session_scope(ctx.engine) as session:
            token, raw = tokens.create(session, name, scopes, actor_of(me))
            made = {"name": token.name, "scopes": token.scopes}
    except tokens.TokenError as exc:
        return editors_page(ctx, me, 422, f"No token made: {exc}", token_name=name[:80], chosen=scopes)
    return page(ctx, "token_created.html", me=me, title="Token created", current="editors", token=made, raw=raw)


@router.post("/tokens/revoke", response_class=HTMLResponse)
def revoke_token(ctx: Console, me: Owner, token_id: FormText = "", csrf_token: FormText = "") -> Response:
    return _change(ctx, me, csrf_token, lambda session: tokens.revoke(session, token_id, actor_of(me)), "revoked")
