"""The console's pages under /admin: login (with an optional TOTP step), logout, set-password,
the dashboard, the audit log and (for owners) editors and tokens.

Every POST carries a CSRF token: a session's own (sessions.csrf_for) once signed in, before
that a double-submit value bound to a SameSite=Strict, HttpOnly cookie. A login always
issues a fresh session id and ends the one the browser came with. GET changes nothing.
"""

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.web.console.dashboard import dashboard
from newsletter.web.console.deps import FORM_COOKIE, SESSION_COOKIE, Answer, ConsoleContext, answer_route, \
    client_ip, set_cookie, signed_in
from newsletter.db import session_scope
from newsletter.editors import accounts, audit, sessions, tokens, totp
from newsletter.editors.models import Editor
from newsletter.editors.passwords import MIN_LENGTH, WeakPassword
from newsletter.editors.roles import Permission, role_allows
from newsletter.editors.sessions import Signed
from newsletter.templating import render
from newsletter.web.abuse import ThrottleLimit

FormText = Annotated[str, Form(max_length=2000)]
EXPIRED_FORM = "The form has expired. Please try again."
BAD_LINK = "This link does not work"


class AdminPages:
    """The page handlers and what they share (rendering, the pre-login CSRF value, throttling)."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self.site = ctx.settings.site

    # --- rendering --------------------------------------------------------------------------

    def page(self, template: str, status: int = 200, me: Signed | None = None, **values) -> HTMLResponse:
        values.setdefault("error", "")
        csrf = me.csrf_token if me else values.pop("csrf_token", "")
        html = render(f"web/admin/{template}", {"site": self.site, "kicker": "Editors' console",
                                                 "me": me.editor if me else None, "csrf_token": csrf, **values})
        return HTMLResponse(html, status, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})

    def message(self, heading: str, text: str, status: int, links=()) -> HTMLResponse:
        html = render("web/message.html", {"site": self.site, "title": heading, "heading": heading,
                                           "kicker": "Editors' console", "paragraphs": [text], "links": links})
        return HTMLResponse(html, status, headers={"Cache-Control": "no-store"})

    def form_page(self, request: Request, template: str, status: int = 200, **values) -> HTMLResponse:
        """A pre-login form: its CSRF value is bound to the form cookie (set here when missing)."""
        cookie = request.cookies.get(FORM_COOKIE, "")
        fresh = not (16 <= len(cookie) <= 64)
        cookie = secrets.token_urlsafe(24) if fresh else cookie
        response = self.page(template, status, csrf_token=sessions.csrf_for(self.ctx.secret, "form:" + cookie),
                             **values)
        if fresh:
            set_cookie(self.ctx, response, FORM_COOKIE, cookie, strict=True)
        return response

    def login_page(self, request: Request, status: int = 200, email: str = "", error: str = "") -> HTMLResponse:
        return self.form_page(request, "login.html", status, title="Sign in", email=email[:254], error=error)

    def totp_page(self, request: Request, ticket: str, status: int = 200, error: str = "") -> HTMLResponse:
        return self.form_page(request, "totp.html", status, title="Sign-in code", ticket=ticket, error=error)

    # --- checks -----------------------------------------------------------------------------

    def form_ok(self, request: Request, token: str) -> bool:
        cookie = request.cookies.get(FORM_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(sessions.csrf_for(self.ctx.secret, "form:" + cookie), token)

    def throttled(self, request: Request, email: str) -> Response | None:
        """Counts one attempt for the account and the client IP; a 429 page once either is used up."""
        admin = self.ctx.settings.admin
        window = admin.login_window_minutes * 60
        wait = self.ctx.limiter.hit([
            ThrottleLimit(f"account:{email.strip().lower()[:254]}", admin.logins_per_account, window),
            ThrottleLimit(f"ip:{client_ip(self.ctx, request)}", admin.logins_per_ip, window)])
        if wait is None:
            return None
        response = self.message("Too many attempts", "Too many sign-in attempts. Please wait and try again.", 429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response

    def require(self, request: Request, permission: Permission) -> Signed:
        me = signed_in(self.ctx, request)
        if me is None:
            raise Answer(RedirectResponse("/admin/login", status_code=303))
        if not role_allows(me.editor.role, permission):
            raise Answer(self.message("Not for your role", "Your role does not include this page. An owner can "
                                      "change your role.", 403, [("Back to the dashboard", "/admin")]))
        return me

    def start_session(self, request: Request, editor: Editor) -> Response:
        """A new session (the browser's old one, if any, ends) and off to the dashboard."""
        with session_scope(self.ctx.engine) as session:
            raw = sessions.start(session, editor, self.ctx.session_lifetime, client_ip(self.ctx, request),
                                 request.headers.get("user-agent", ""), replaces=request.cookies.get(SESSION_COOKIE))
            audit.record(session, audit.Actor(f"editor:{editor.email}", editor.id), "editor.login",
                         f"editor:{editor.email}")
        response = RedirectResponse("/admin", status_code=303)
        set_cookie(self.ctx, response, SESSION_COOKIE, raw)
        return response

    # --- pages for signed-in editors ----------------------------------------------------------

    def dashboard(self, request: Request) -> HTMLResponse:
        me = self.require(request, Permission.read)
        return self.page("dashboard.html", me=me, title="Dashboard", current="dashboard",
                         board=dashboard(self.ctx.settings, self.ctx.engine))

    def audit_log(self, request: Request) -> HTMLResponse:
        me = self.require(request, Permission.read)
        with session_scope(self.ctx.engine) as session:
            entries = audit.recent(session, 100)
        return self.page("audit.html", me=me, title="Audit log", current="audit", entries=entries)

    def editors(self, request: Request) -> HTMLResponse:
        me = self.require(request, Permission.manage_editors)
        with session_scope(self.ctx.engine) as session:
            editors, api_tokens = accounts.list_editors(session), tokens.list_tokens(session)
        return self.page("editors.html", me=me, title="Editors and tokens", current="editors", editors=editors,
                         tokens=api_tokens)

    # --- signing in and out -------------------------------------------------------------------

    def login_form(self, request: Request) -> Response:
        if signed_in(self.ctx, request):
            return RedirectResponse("/admin", status_code=303)
        return self.login_page(request)

    def login(self, request: Request, email: FormText = "", password: FormText = "",
              csrf_token: FormText = "") -> Response:
        if not self.form_ok(request, csrf_token):
            return self.login_page(request, 400, email, EXPIRED_FORM)
        refused = self.throttled(request, email)
        if refused:
            return refused
        with session_scope(self.ctx.engine) as session:
            editor = accounts.check_login(session, email, password)
        if editor is None:
            return self.login_page(request, 400, email, "That email and password do not match an editor's account.")
        if editor.totp_secret:
            return self.totp_page(request, accounts.login_ticket(self.ctx.secret, editor))
        return self.start_session(request, editor)

    def login_totp(self, request: Request, ticket: FormText = "", code: FormText = "",
                   csrf_token: FormText = "") -> Response:
        with session_scope(self.ctx.engine) as session:
            try:
                editor = accounts.editor_for_ticket(session, self.ctx.secret, ticket)
            except accounts.AccountError:
                return self.login_page(request, 400, error="The sign-in took too long. Please start again.")
            if not self.form_ok(request, csrf_token):
                return self.totp_page(request, ticket, 400, EXPIRED_FORM)
            refused = self.throttled(request, editor.email)
            if refused:
                return refused
            accepted = totp.accept(session, editor, code)
        if not accepted:
            return self.totp_page(request, ticket, 400, "That code is not right (or was used already). Try the next.")
        return self.start_session(request, editor)

    def logout(self, request: Request, csrf_token: FormText = "") -> Response:
        me = signed_in(self.ctx, request)
        if me is not None:
            if not hmac.compare_digest(me.csrf_token, csrf_token):
                return self.message("That did not work", "The form has expired. Go back, reload and try again.", 403)
            with session_scope(self.ctx.engine) as session:
                sessions.end(session, request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/admin/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/admin", secure=self.ctx.secure_cookies, httponly=True)
        return response

    # --- the one-time set-password link -------------------------------------------------------

    def link_editor(self, session, token: str) -> Editor:
        try:
            return accounts.editor_for_set_password(session, self.ctx.secret, token,
                                                    self.ctx.settings.admin.set_password_hours * 3600)
        except accounts.AccountError as exc:
            raise Answer(self.message(BAD_LINK, str(exc).capitalize() + ". Ask an owner for a new one.", 400))

    def password_page(self, request: Request, token: str, email: str, status: int = 200, error: str = "") -> Response:
        return self.form_page(request, "set_password.html", status, title="Choose your password", token=token,
                              email=email, min_length=MIN_LENGTH, error=error)

    def set_password_form(self, request: Request, token: str) -> Response:
        with session_scope(self.ctx.engine) as session:
            editor = self.link_editor(session, token)
        return self.password_page(request, token, editor.email)

    def set_password(self, request: Request, token: str, password: FormText = "", password_repeat: FormText = "",
                     csrf_token: FormText = "") -> Response:
        with session_scope(self.ctx.engine) as session:
            editor = self.link_editor(session, token)
            if not self.form_ok(request, csrf_token):
                return self.password_page(request, token, editor.email, 400, EXPIRED_FORM)
            if password != password_repeat:
                return self.password_page(request, token, editor.email, 422, "The two passwords differ.")
            try:
                accounts.set_password(session, editor, password, audit.Actor(f"editor:{editor.email}", editor.id))
            except WeakPassword as exc:
                error = str(exc).removeprefix("password: ").capitalize()
                return self.password_page(request, token, editor.email, 422, error)
        return self.message("Password set", "Your password is set. Sign in with it now.", 200,
                            [("Sign in", "/admin/login")])


def make_router(ctx: ConsoleContext) -> APIRouter:
    router = APIRouter(prefix="/admin", route_class=answer_route(), include_in_schema=False)
    pages = AdminPages(ctx)
    for path, endpoint, method in (
        ("", pages.dashboard, "GET"), ("/audit", pages.audit_log, "GET"), ("/editors", pages.editors, "GET"),
        ("/login", pages.login_form, "GET"), ("/login", pages.login, "POST"),
        ("/login/totp", pages.login_totp, "POST"), ("/logout", pages.logout, "POST"),
        ("/set-password/{token}", pages.set_password_form, "GET"), ("/set-password/{token}", pages.set_password, "POST"),
    ):
        router.add_api_route(path, endpoint, methods=[method], response_class=HTMLResponse)
    return router
