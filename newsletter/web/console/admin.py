"""The console's pages under /admin: login (with an optional TOTP step), logout, set-password,
the dashboard. The audit log is in audit_pages.py, the owners pages (editors and tokens) in owners_pages.py.

Every POST carries a CSRF token: a session's own (sessions.csrf_for) once signed in, before
that a double-submit value bound to a SameSite=Strict, HttpOnly cookie. A login always
issues a fresh session id and ends the one the browser came with. GET changes nothing.
"""

import hmac
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.web.console.dashboard import dashboard as dashboard_figures
from newsletter.web.console.deps import FORM_COOKIE, SESSION_COOKIE, Answer, Console, ConsoleContext, \
    client_ip, set_cookie, signed_in
from newsletter.db import session_scope
from newsletter.editors import accounts, audit, sessions, totp
from newsletter.editors.models import Editor
from newsletter.editors.passwords import MIN_LENGTH, WeakPassword
from newsletter.reports.stats import delivery_note
from newsletter.web.abuse import ThrottleLimit
from newsletter.web.console.views import EXPIRED_FORM, Reader, console_router, form_page, message, page

FormText = Annotated[str, Form(max_length=2000)]
BAD_LINK = "This link does not work"

router = console_router()


# --- pre-login forms ------------------------------------------------------------------------

def login_page(ctx: ConsoleContext, request: Request, status: int = 200, email: str = "",
               error: str = "") -> HTMLResponse:
    return form_page(ctx, request, "login.html", status, title="Sign in", email=email[:254], error=error)


def totp_page(ctx: ConsoleContext, request: Request, ticket: str, status: int = 200, error: str = "") -> HTMLResponse:
    return form_page(ctx, request, "totp.html", status, title="Sign-in code", ticket=ticket, error=error)


# --- checks ----------------------------------------------------------------------------------

def form_ok(ctx: ConsoleContext, request: Request, token: str) -> bool:
    cookie = request.cookies.get(FORM_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(sessions.csrf_for(ctx.secret, "form:" + cookie), token)


def _login_limits(ctx: ConsoleContext, request: Request, email: str) -> list[ThrottleLimit]:
    admin = ctx.settings.admin
    window = admin.login_window_minutes * 60
    return [ThrottleLimit(f"account:{email.strip().lower()[:254]}", admin.logins_per_account, window),
            ThrottleLimit(f"ip:{client_ip(ctx, request)}", admin.logins_per_ip, window)]


def throttled(ctx: ConsoleContext, request: Request, email: str) -> Response | None:
    """Counts one attempt for the account and the client IP; a 429 page once either is used up.
    A step that succeeds gives its own attempt back (`gave_right`): the limits are on failures,
    so an editor who signs in often, or an office of editors behind one address, is never locked
    out by their own successful sign-ins."""
    wait = ctx.limiter.hit(_login_limits(ctx, request, email))
    if wait is None:
        return None
    response = message(ctx, "Too many attempts", "Too many sign-in attempts. Please wait and try again.", 429)
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response


def gave_right(ctx: ConsoleContext, request: Request, email: str) -> None:
    """The attempt `throttled` just counted for `email` from this client was right (the password,
    or the code): it no longer counts. Each step gives back only its own attempt, on the keys it
    was counted on, so reusing a sign-in ticket or changing address midway cannot take back more
    than was counted."""
    ctx.limiter.refund([limit.key for limit in _login_limits(ctx, request, email)])


def start_session(ctx: ConsoleContext, request: Request, editor: Editor) -> Response:
    """A new session (the browser's old one, if any, ends) and off to the dashboard."""
    with session_scope(ctx.engine) as session:
        raw = sessions.start(session, editor, ctx.session_lifetime, client_ip(ctx, request),
                             request.headers.get("user-agent", ""), replaces=request.cookies.get(SESSION_COOKIE))
        audit.record(session, audit.Actor(f"editor:{editor.email}", editor.id), "editor.login",
                     f"editor:{editor.email}")
    response = RedirectResponse("/admin", status_code=303)
    set_cookie(ctx, response, SESSION_COOKIE, raw)
    return response


# --- pages for signed-in editors -------------------------------------------------------------

@router.get("", response_class=HTMLResponse)
def dashboard(ctx: Console, me: Reader) -> HTMLResponse:
    return page(ctx, "dashboard.html", me=me, title="Dashboard", current="dashboard",
                board=dashboard_figures(ctx.settings, ctx.engine),
                delivery_note=delivery_note(ctx.settings.mail.transport))




# --- signing in and out ----------------------------------------------------------------------

@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, ctx: Console) -> Response:
    if signed_in(ctx, request):
        return RedirectResponse("/admin", status_code=303)
    return login_page(ctx, request)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, ctx: Console, email: FormText = "", password: FormText = "",
          csrf_token: FormText = "") -> Response:
    if not form_ok(ctx, request, csrf_token):
        return login_page(ctx, request, 400, email, EXPIRED_FORM)
    refused = throttled(ctx, request, email)
    if refused:
        return refused
    with session_scope(ctx.engine) as session:
        editor = accounts.check_login(session, email, password)
    if editor is None:
        return login_page(ctx, request, 400, email, "That email and password do not match an editor's account.")
    gave_right(ctx, request, email)
    if editor.totp_secret:
        return totp_page(ctx, request, accounts.login_ticket(ctx.secret, editor))
    return start_session(ctx, request, editor)


@router.post("/login/totp", response_class=HTMLResponse)
def login_totp(request: Request, ctx: Console, ticket: FormText = "", code: FormText = "",
               csrf_token: FormText = "") -> Response:
    with session_scope(ctx.engine) as session:
        try:
            editor = accounts.editor_for_ticket(session, ctx.secret, ticket)
        except accounts.AccountError:
            return login_page(ctx, request, 400, error="The sign-in took too long. Please start again.")
        if not form_ok(ctx, request, csrf_token):
            return totp_page(ctx, request, ticket, 400, EXPIRED_FORM)
        refused = throttled(ctx, request, editor.email)
        if refused:
            return refused
        accepted = totp.accept(session, editor, code)
    if not accepted:
        return totp_page(ctx, request, ticket, 400, "That code is not right (or was used already). Try the next.")
    gave_right(ctx, request, editor.email)
    return start_session(ctx, request, editor)


@router.post("/logout", response_class=HTMLResponse)
def logout(request: Request, ctx: Console, csrf_token: FormText = "") -> Response:
    me = signed_in(ctx, request)
    if me is not None:
        if not hmac.compare_digest(me.csrf_token, csrf_token):
            return message(ctx, "That did not work", "The form has expired. Go back, reload and try again.", 403)
        with session_scope(ctx.engine) as session:
            sessions.end(session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/admin", secure=ctx.secure_cookies, httponly=True)
    return response


# --- the one-time set-password link ----------------------------------------------------------

def link_editor(ctx: ConsoleContext, session, token: str) -> Editor:
    try:
        return accounts.editor_for_set_password(session, ctx.secret, token,
                                                ctx.settings.admin.set_password_hours * 3600)
    except accounts.AccountError as exc:
        raise Answer(message(ctx, BAD_LINK, str(exc).capitalize() + ". Ask an owner for a new one.", 400))


def password_page(ctx: ConsoleContext, request: Request, token: str, email: str, status: int = 200,
                  error: str = "") -> Response:
    return form_page(ctx, request, "set_password.html", status, title="Choose your password", token=token,
                     email=email, min_length=MIN_LENGTH, error=error)


@router.get("/set-password/{token}", response_class=HTMLResponse)
def set_password_form(request: Request, ctx: Console, token: str) -> Response:
    with session_scope(ctx.engine) as session:
        editor = link_editor(ctx, session, token)
    return password_page(ctx, request, token, editor.email)


@router.post("/set-password/{token}", response_class=HTMLResponse)
def set_password(request: Request, ctx: Console, token: str, password: FormText = "",
                 password_repeat: FormText = "", csrf_token: FormText = "") -> Response:
    with session_scope(ctx.engine) as session:
        editor = link_editor(ctx, session, token)
        if not form_ok(ctx, request, csrf_token):
            return password_page(ctx, request, token, editor.email, 400, EXPIRED_FORM)
        if password != password_repeat:
            return password_page(ctx, request, token, editor.email, 422, "The two passwords differ.")
        try:
            accounts.set_password(session, editor, password, audit.Actor(f"editor:{editor.email}", editor.id))
        except WeakPassword as exc:
            error = str(exc).removeprefix("password: ").capitalize()
            return password_page(ctx, request, token, editor.email, 422, error)
    return message(ctx, "Password set", "Your password is set. Sign in with it now.", 200,
                   [("Sign in", "/admin/login")])
