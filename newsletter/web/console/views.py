"""What every console page module shares: rendering a page in the console's layout, a message
page, a pre-login form, and the signed-in editor a page needs (by permission), with the
session's CSRF check for its POSTs.

A page module makes its router with `console_router()` and asks for the editor with one of
the aliases below: Reader (viewer and up), Reviewer, IssueEditor, ReaderManager, Owner.
"""

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from newsletter.editors import sessions
from newsletter.editors.roles import Permission, role_allows
from newsletter.editors.sessions import Signed
from newsletter.templating import render
from newsletter.web.console.deps import FORM_COOKIE, Answer, Console, ConsoleContext, answer_route, set_cookie, \
    signed_in

EXPIRED_FORM = "The form has expired. Please try again."


def console_router() -> APIRouter:
    """A router for one console module: under /admin, not in the API's OpenAPI schema."""
    return APIRouter(prefix="/admin", route_class=answer_route(), include_in_schema=False)


def page(ctx: ConsoleContext, template: str, status: int = 200, me: Signed | None = None, **values) -> HTMLResponse:
    values.setdefault("error", "")
    csrf = me.csrf_token if me else values.pop("csrf_token", "")
    html = render(f"web/admin/{template}", {"site": ctx.settings.site, "kicker": "Editors' console",
                                             "me": me.editor if me else None, "csrf_token": csrf, **values})
    return HTMLResponse(html, status, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


def message(ctx: ConsoleContext, heading: str, text: str, status: int, links=()) -> HTMLResponse:
    html = render("web/message.html", {"site": ctx.settings.site, "title": heading, "heading": heading,
                                       "kicker": "Editors' console", "paragraphs": [text], "links": links})
    return HTMLResponse(html, status, headers={"Cache-Control": "no-store"})


def form_page(ctx: ConsoleContext, request: Request, template: str, status: int = 200, **values) -> HTMLResponse:
    """A pre-login form: its CSRF value is bound to the form cookie (set here when missing)."""
    cookie = request.cookies.get(FORM_COOKIE, "")
    fresh = not (16 <= len(cookie) <= 64)
    cookie = secrets.token_urlsafe(24) if fresh else cookie
    response = page(ctx, template, status, csrf_token=sessions.csrf_for(ctx.secret, "form:" + cookie), **values)
    if fresh:
        set_cookie(ctx, response, FORM_COOKIE, cookie, strict=True)
    return response


def require(permission: Permission):
    """A dependency: the signed-in editor whose role allows `permission`; otherwise off to the
    login page (not signed in) or a 403 page (role too small)."""
    def signed(request: Request, ctx: Console) -> Signed:
        me = signed_in(ctx, request)
        if me is None:
            raise Answer(RedirectResponse("/admin/login", status_code=303))
        if not role_allows(me.editor.role, permission):
            raise Answer(message(ctx, "Not for your role", "Your role does not include this page. An owner can "
                                 "change your role.", 403, [("Back to the dashboard", "/admin")]))
        return me
    return signed


Reader = Annotated[Signed, Depends(require(Permission.read))]
Reviewer = Annotated[Signed, Depends(require(Permission.edit_comparisons))]
IssueEditor = Annotated[Signed, Depends(require(Permission.manage_issues))]
ReaderManager = Annotated[Signed, Depends(require(Permission.manage_readers))]
Owner = Annotated[Signed, Depends(require(Permission.manage_editors))]




def check_csrf(ctx: ConsoleContext, me: Signed, token: str) -> None:
    """Every signed-in POST: the form must carry the session's CSRF token, else a 403 page."""
    if not hmac.compare_digest(me.csrf_token, token or ""):
        raise Answer(message(ctx, "That did not work", "The form has expired. Go back, reload and try again.", 403))
