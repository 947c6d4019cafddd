"""`newsletter editors` and `newsletter tokens`: the console's accounts and the API's bearer tokens
(docs/console.md, docs/api.md). The domain lives in newsletter/editors/; these commands only
parse, print and turn its refusals into one-line errors."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli.common import app, console, group, state
from newsletter.errors import UserError

editors_app = group(help="Editors of the console at /admin: add, list, remove, two-factor.")
tokens_app = group(help="API tokens for /api/v1: create (shown once), list, revoke.")
app.add_typer(editors_app, name="editors")
app.add_typer(tokens_app, name="tokens")


def _editors_call(action):
    """Run `action(session)` in one transaction; the domain's refusals become clear CLI errors."""
    from newsletter.editors.accounts import AccountError
    from newsletter.editors.passwords import WeakPassword
    from newsletter.editors.tokens import TokenError

    try:
        from newsletter.db import session_scope

        with session_scope(state.engine()) as session:
            return action(session)
    except (AccountError, WeakPassword, TokenError, ValueError) as exc:
        raise UserError(str(exc)) from None


@editors_app.command("add")
def editors_add(
    email: Annotated[str, typer.Argument(help="The editor's email address (their login).")],
    role: Annotated[str, typer.Option("--role", help="owner, editor, reviewer or viewer (docs/console.md).")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input instead of printing a set-password link.")] = False,
) -> None:
    """Add an editor; prints a one-time link to set their password (or reads it from stdin)."""
    from newsletter.editors import accounts, audit
    from newsletter.secret_key import load_secret_key

    password = sys.stdin.read().rstrip("\r\n") if password_stdin else None
    editor = _editors_call(lambda session: accounts.add_editor(session, email, role, audit.Actor.cli(), password))
    console.print(f"editor {editor.email} added as {editor.role}")
    if password is None:
        token = accounts.set_password_token(load_secret_key(state.settings), editor)
        hours = state.settings.admin.set_password_hours
        console.print(f"send them this link to set a password (works once, for {hours:g} hours):")
        console.print(f"{state.settings.site.base_url}/admin/set-password/{token}", highlight=False)


@editors_app.command("list")
def editors_list() -> None:
    """Every editor with role and state (invited: no password set yet)."""
    from newsletter.editors import accounts

    table = Table("email", "role", "state", "two-factor", "added")
    for editor in _editors_call(accounts.list_editors):
        status = "removed" if editor.disabled_at else ("invited" if not editor.password_hash else "active")
        table.add_row(editor.email, editor.role, status, "yes" if editor.totp_secret else "no",
                      f"{editor.created_at:%Y-%m-%d}")
    console.print(table)


@editors_app.command("remove")
def editors_remove(email: Annotated[str, typer.Argument(help="The editor's email address.")]) -> None:
    """Remove an editor: they cannot sign in and their sessions end (the audit log keeps their name)."""
    from newsletter.editors import accounts, audit

    editor = _editors_call(lambda session: accounts.remove_editor(session, email, audit.Actor.cli()))
    console.print(f"editor {editor.email} removed; their sessions are ended")


@editors_app.command("totp")
def editors_totp(
    email: Annotated[str, typer.Argument(help="The editor's email address.")],
    off: Annotated[bool, typer.Option("--off", help="Turn the second factor off instead.")] = False,
) -> None:
    """Turn on a TOTP second factor (prints the otpauth:// URI for an authenticator app), or --off."""
    from newsletter.editors import accounts, audit, totp

    def change(session):
        editor = accounts.find(session, email)
        if editor is None or editor.disabled_at is not None:
            raise accounts.AccountError(f"{email} is not an editor")
        if off:
            totp.disable(session, editor, audit.Actor.cli())
            return None
        return totp.enable(session, editor, state.settings.site.name, audit.Actor.cli())

    uri = _editors_call(change)
    console.print("two-factor sign-in is off" if off else "add this to an authenticator app (it is shown once):")
    if uri:
        console.print(uri, highlight=False)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="What the token is for (unique), e.g. \"cms\".")],
    scope: Annotated[list[str], typer.Option("--scope", help="read (every GET), comparisons (PUT comparisons) or all; repeat or separate with commas.")],
) -> None:
    """Create an API token; the token is printed once, alone on the last line."""
    from newsletter.editors import audit, tokens

    token, raw = _editors_call(lambda session: tokens.create(session, name, scope, audit.Actor.cli()))
    console.print(f"token {token.name!r} with scopes {token.scopes}; store it now, it is not shown again:")
    console.print(raw, highlight=False)


@tokens_app.command("list")
def tokens_list() -> None:
    """Every API token: name, scopes, created, last used (the tokens themselves are not stored)."""
    from newsletter.editors import tokens

    table = Table("name", "scopes", "created", "last used", "state")
    for token in _editors_call(tokens.list_tokens):
        last = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
        table.add_row(token.name, token.scopes, f"{token.created_at:%Y-%m-%d}", last,
                      "revoked" if token.revoked_at else "live")
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="The token's name (or id).")]) -> None:
    """Revoke an API token: requests with it get 401 from now on."""
    from newsletter.editors import audit, tokens

    token = _editors_call(lambda session: tokens.revoke(session, name, audit.Actor.cli()))
    console.print(f"token {token.name!r} revoked")
