"""The console's pages under /admin: login (with an optional TOTP step), logout, set-password,
the dashboard, the audit log and (for owners) editors and tokens.

Every POST carries a CSRF token: a session's own (sessions.csrf_for) once signed in, before
that a double-submit value bound to a SameSite=Strict, HttpOnly cookie. A login always
issues a fresh session id and ends the one the browser came with. GET changes nothing.
"""


import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from newsletter.console.deps import FORM_COOKIE, SESSION_COOKIE, Answer, ConsoleContext, answer_route, \
    client_ip, set_cookie, signed_in
from newsletter.console.dashboard import dashboard
from newsletter.db import session_scope
from newsletter.editors import accounts, audit, sessions, tokens, totp
from newsletter.editors.passwords import MIN_LENGTH, WeakPassword
from newsletter.editors.roles import Permission, role_allows
from newsletter.editors.sessions import Signed
from newsletter.templating import render
from subscribers.abuse import Limit

FormText = Annotated[str, Form(max_length=2000)]
EXPIRED_FORM = "The form has expired. Please try again."


def make_router(ctx: ConsoleContext) -> APIRouter:
    router = APIRouter(prefix="/admin", route_class=answer_route(), include_in_schema=False)
    site = ctx.settings.site

    def page(template: str, status: int = 200, me: Signed | None = None, **values) -> HTMLResponse:
        values.setdefault("error", "")
        html = render(f"web/admin/{template}", {
            "site": site, "kicker": "Editors' console", "me": me.editor if me else None,
            "csrf_token": me.csrf_token if me else values.pop("csrf_token", ""), **values})
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store",
                                                               "X-Frame-Options": "DENY"})

    def message(heading: str, text: str, status: int, links=()) -> HTMLResponse:
        html = render("web/message.html", {"site": site, "title": heading, "heading": heading,
                                           "kicker": "Editors' console", "paragraphs": [text], "links": links})
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def form_page(request: Request, template: str, status: int = 200, **values) -> HTMLResponse:
        """A pre-login form: its CSRF value is bound to the form cookie (set here when missing)."""
        cookie = request.cookies.get(FORM_COOKIE, "")
        fresh = not (16 <= len(cookie) <= 64)
        cookie = secrets.token_urlsafe(24) if fresh else cookie
        response = page(template, status, csrf_token=sessions.csrf_for(ctx.secret, "form:" + cookie), **values)
        if fresh:
            set_cookie(ctx, response, FORM_COOKIE, cookie, strict=True)
        return response

    def check_form(request: Request, token: str) -> bool:
        cookie = request.cookies.get(FORM_COOKIE, "")
        expected = sessions.csrf_for(ctx.secret, "form:" + cookie)
        return bool(cookie) and hmac.compare_digest(expected, token)

    def throttled(request: Request, email: str) -> Response | None:
        admin = ctx.settings.admin
        window = admin.login_window_minutes * 60
        wait = ctx.limiter.hit([Limit(f"account:{email.strip().lower()[:254]}", admin.logins_per_account, window),
                                Limit(f"ip:{client_ip(ctx, request)}", admin.logins_per_ip, window)])
        if wait is None:
            return None
        response = message("Too many attempts", "Too many sign-in attempts. Please wait a while and try again.",
                           429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response

    def signed_in_as(request: Request, editor) -> Response:
        """A new session (the browser's old one, if any, ends) and off to the dashboard."""
        with session_scope(ctx.engine) as session:
            raw = sessions.start(session, editor, ctx.session_lifetime, client_ip(ctx, request),
                                 request.headers.get("user-agent", ""), replaces=request.cookies.get(SESSION_COOKIE))
            audit.record(session, audit.Actor(f"editor:{editor.email}", editor.id), "editor.login",
                         f"editor:{editor.email}")
        response = RedirectResponse("/admin", status_code=303)
        set_cookie(ctx, response, SESSION_COOKIE, raw)
        return response

    def require(permission: Permission):
        def dependency(request: Request) -> Signed:
            me = signed_in(ctx, request)
            if me is None:
                raise Answer(RedirectResponse("/admin/login", status_code=303))
            if not role_allows(me.editor.role, permission):
                raise Answer(message("Not for your role", "Your role does not include this page. An owner "
                                     "can change your role.", 403, [("Back to the dashboard", "/admin")]))
            return me
        return dependency

    @router.get("", response_class=HTMLResponse)
    def dashboard_page(me: Annotated[Signed, Depends(require(Permission.read))]) -> HTMLResponse:
        return page("dashboard.html", me=me, title="Dashboard", current="dashboard",
                    board=dashboard(ctx.settings, ctx.engine))

    @router.get("/audit", response_class=HTMLResponse)
    def audit_page(me: Annotated[Signed, Depends(require(Permission.read))]) -> HTMLResponse:
        with session_scope(ctx.engine) as session:
            entries = audit.recent(session, 100)
        return page("audit.html", me=me, title="Audit log", current="audit", entries=entries)

    @router.get("/editors", response_class=HTMLResponse)
    def editors_page(me: Annotated[Signed, Depends(require(Permission.manage_editors))]) -> HTMLResponse:
        with session_scope(ctx.engine) as session:
            editors, api_tokens = accounts.list_editors(session), tokens.list_tokens(session)
        return page("editors.html", me=me, title="Editors and tokens", current="editors", editors=editors,
                    tokens=api_tokens)

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        if signed_in(ctx, request):
            return RedirectResponse("/admin", status_code=303)
        return form_page(request, "login.html", title="Sign in", email="")

    @router.post("/login", response_class=HTMLResponse)
    def login(request: Request, email: FormText = "", password: FormText = "", csrf_token: FormText = "") -> Response:
        if not check_form(request, csrf_token):
            return form_page(request, "login.html", 400, title="Sign in", email=email[:254], error=EXPIRED_FORM)
        refused = throttled(request, email)
        if refused:
            return refused
        with session_scope(ctx.engine) as session:
            editor = accounts.check_login(session, email, password)
        if editor is None:
            return form_page(request, "login.html", 400, title="Sign in", email=email[:254],
                             error="That email and password do not match an editor's account.")
        if editor.totp_secret:
            return form_page(request, "totp.html", title="Sign-in code", ticket=accounts.login_ticket(ctx.secret, editor))
        return signed_in_as(request, editor)

    @router.post("/login/totp", response_class=HTMLResponse)
    def login_totp(request: Request, ticket: FormText = "", code: FormText = "", csrf_token: FormText = "") -> Response:
        with session_scope(ctx.engine) as session:
            try:
                editor = accounts.editor_for_ticket(session, ctx.secret, ticket)
            except accounts.AccountError:
                return form_page(request, "login.html", 400, title="Sign in", email="",
                                 error="The sign-in took too long. Please start again.")
            if not check_form(request, csrf_token):
                return form_page(request, "totp.html", 400, title="Sign-in code", ticket=ticket, error=EXPIRED_FORM)
            refused = throttled(request, editor.email)
            if refused:
                return refused
            accepted = totp.accept(session, editor, code)
        if not accepted:
            return form_page(request, "totp.html", 400, title="Sign-in code", ticket=ticket,
                             error="That code is not right (or was used already). Try the next one.")
        return signed_in_as(request, editor)

    @router.post("/logout", response_class=HTMLResponse)
    def logout(request: Request, csrf_token: FormText = "") -> Response:
        me = signed_in(ctx, request)
        if me is not None:
            if not hmac.compare_digest(me.csrf_token, csrf_token):
                return message("That did not work", "The form has expired. Go back, reload and try again.", 403)
            with session_scope(ctx.engine) as session:
                sessions.end(session, request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/admin/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/admin", secure=ctx.secure_cookies, httponly=True)
        return response

    def set_password_page(request: Request, token: str, email: str, status: int = 200, error: str = "") -> Response:
        return form_page(request, "set_password.html", status, title="Choose your password", token=token,
                         email=email, min_length=MIN_LENGTH, error=error)

    @router.get("/set-password/{token}", response_class=HTMLResponse)
    def set_password_form(request: Request, token: str) -> Response:
        with session_scope(ctx.engine) as session:
            try:
                editor = accounts.editor_for_set_password(session, ctx.secret, token, _link_age(ctx))
            except accounts.AccountError as exc:
                return message("This link does not work", str(exc).capitalize() + ". Ask an owner for a new one.", 400)
        return set_password_page(request, token, editor.email)

    @router.post("/set-password/{token}", response_class=HTMLResponse)
    def set_password(request: Request, token: str, password: FormText = "", password_repeat: FormText = "",
                     csrf_token: FormText = "") -> Response:
        with session_scope(ctx.engine) as session:
            try:
                editor = accounts.editor_for_set_password(session, ctx.secret, token, _link_age(ctx))
            except accounts.AccountError as exc:
                return message("This link does not work", str(exc).capitalize() + ". Ask an owner for a new one.", 400)
            if not check_form(request, csrf_token):
                return set_password_page(request, token, editor.email, 400, EXPIRED_FORM)
            if password != password_repeat:
                return set_password_page(request, token, editor.email, 422, "The two passwords differ.")
            try:
                accounts.set_password(session, editor, password, audit.Actor(f"editor:{editor.email}", editor.id))
            except WeakPassword as exc:
                return set_password_page(request, token, editor.email, 422, str(exc).removeprefix("password: ")
                                         .capitalize())
        return message("Password set", "Your password is set. Sign in with it now.", 200,
                       [("Sign in", "/admin/login")])

    return router


def _link_age(ctx: ConsoleContext) -> float:
    return ctx.settings.admin.set_password_hours * 3600
