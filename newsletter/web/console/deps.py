"""What the console's routes share: context, who is asking (session or token), and answers
that end a request early (a redirect to the login page, a JSON error).

Handlers are module-level functions on module-level routers (as in web/); they reach the
ConsoleContext through the one dependency alias `Console`. Routers here use AnswerRoute: a
dependency or handler raises `Answer(response)` and that response goes out as is, whatever
the app's HTML error pages would have said.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.editors import sessions
from newsletter.editors.sessions import Signed
from newsletter.web.abuse import RequestThrottle
from newsletter.web.deps import WebContext

SESSION_COOKIE = "wv_console"
FORM_COOKIE = "wv_console_form"  # before login: the double-submit CSRF value of the login forms


class Answer(Exception):
    """Stop here and send `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def answer_route(on_validation_error: Callable[[Request, Exception], Response] | None = None) -> type[APIRoute]:
    """A route class whose handlers (and dependencies) may raise Answer."""
    from fastapi.exceptions import RequestValidationError

    class AnswerRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def answered(request: Request) -> Response:
                try:
                    return await handler(request)
                except Answer as answer:
                    return answer.response
                except RequestValidationError as exc:
                    if on_validation_error is None:
                        raise
                    return on_validation_error(request, exc)

            return answered

    return AnswerRoute


@dataclass
class ConsoleContext:
    settings: Settings
    engine: Engine
    secret: str
    web: WebContext  # the public site's context: the signup API shares its rate limits
    limiter: RequestThrottle = field(default_factory=RequestThrottle)  # login attempts

    @property
    def secure_cookies(self) -> bool:
        """Secure everywhere but plain-HTTP development on this machine (browsers drop
        Secure cookies sent over http://127.0.0.1)."""
        base = self.settings.site.base_url
        local = base.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
        return not local

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.admin.session_hours)

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.settings.admin.idle_minutes)


def console_context(request: Request) -> ConsoleContext:
    """The console's context (set by include_console on app.state), read per request so the
    routers can be module-level and a test can change settings on a running app."""
    return request.app.state.console


Console = Annotated[ConsoleContext, Depends(console_context)]


def client_ip(ctx: ConsoleContext, request: Request) -> str:
    """The client's IP, from X-Forwarded-For only behind a trusted proxy ([web] trust_forwarded_for)."""
    forwarded = request.headers.get("x-forwarded-for")
    if ctx.settings.web.trust_forwarded_for and forwarded:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "unknown"


def signed_in(ctx: ConsoleContext, request: Request) -> Signed | None:
    raw = request.cookies.get(SESSION_COOKIE, "")
    if not raw:
        return None
    with session_scope(ctx.engine) as session:
        return sessions.resume(session, ctx.secret, raw, ctx.idle)


def set_cookie(ctx: ConsoleContext, response: Response, name: str, value: str, strict: bool = False) -> None:
    response.set_cookie(name, value, httponly=True, secure=ctx.secure_cookies,
                        samesite="strict" if strict else "lax", path="/admin")
