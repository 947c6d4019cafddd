"""What every route gets from the app: the request context and the declared form fields.

Routes are module-level functions (FastAPI project-template shape); what they used to take from
a closure comes from `request.app.state.web` through the one dependency alias `Ctx`, so tests can
still swap the clock on a running app (`app.state.web.clock = ...`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, TypeVar
from urllib.parse import parse_qsl

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db import utcnow
from newsletter.subscribers.consent import Origin
from newsletter.subscribers.service import InvalidInput
from newsletter.web.abuse import RequestThrottle, client_address

MAX_FIELD = 1000  # any single form value longer than this is refused outright
MAX_FIELDS = 1000  # and a form of more fields (Starlette's limit)
T = TypeVar("T")


@dataclass
class WebContext:
    """Per-app state shared by all routes: settings, database, signing secret and the throttle."""

    settings: Settings
    engine: Engine
    secret: str
    categories: Callable[[], list[str]]
    throttle: RequestThrottle = field(default_factory=RequestThrottle)
    clock: Callable[[], datetime] = utcnow
    on_queued: Callable[[], None] = lambda: None  # wakes the background sender
    answers: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # see `same_answer`
    threads: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(10, "web"))  # see `in_thread`

    async def in_thread(self, function: Callable[..., T], *args) -> T:
        """`function(*args)` in one of the hot routes' threads (as many as the database pool keeps
        connections: create_app). Starlette's run_in_threadpool (AnyIO: a capacity limiter, a
        cancel scope and a result queue per call) cost a tenth of the serve process's CPU per signup
        and per one-click unsubscribe at 200 requests/s (issue 18); the event loop's own executor
        hand-off does the same job. No context variables travel: these routes read none."""
        return await asyncio.get_running_loop().run_in_executor(self.threads, function, *args)

    def same_answer(self, key: str, build: Callable[[], HTMLResponse]) -> HTMLResponse:
        """An answer page that is the same for every request (the signup's "check your inbox", the
        one-click unsubscribe's page), rendered once per app: rendering it per request was a tenth
        of a signup's CPU at 200 requests/s (issue 18). A template edit shows after a restart."""
        if key not in self.answers:
            built = build()
            self.answers[key] = (bytes(built.body), built.status_code)
        body, status = self.answers[key]
        return HTMLResponse(body, status_code=status)


async def web_context(request: Request) -> WebContext:
    """The app's context (set by create_app), read per request so a swapped clock takes effect.
    Async because it does no I/O: FastAPI would run a plain function in the threadpool, one more
    thread hop on every request."""
    return request.app.state.web


Ctx = Annotated[WebContext, Depends(web_context)]

# Form fields are declared (FastAPI Form parameters) so the OpenAPI schema describes them; the
# handlers still read the raw form themselves (repeated fields, length limits, friendly errors).
FormText = Annotated[str, Form()]
FormList = Annotated[list[str], Form()]
TEXT_FIELD = {"type": "string", "default": ""}
LIST_FIELD = {"type": "array", "items": {"type": "string"}, "default": []}


def form_schema(title: str, fields: dict[str, dict]) -> dict:
    """`openapi_extra` for a hot route that reads its form only with `form_data`: the schema
    describes the fields as declared Form parameters would, but FastAPI neither parses nor
    validates them per request (that was a quarter of the event loop's time per signup and
    one-click unsubscribe at 200 requests/s: issue 18). 422: the form comes back with messages."""
    return {"requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "title": title, "properties": fields}}}},
            "responses": {"422": {"description": "The form was not valid: the page again, with messages",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}}}


def client_ip(ctx: WebContext, request: Request) -> str:
    """The client's address as the outermost trusted proxy saw it ([web] trusted_proxy_hops)."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.getlist("x-forwarded-for"), ctx.settings.web.trusted_proxy_hops)


def origin_of(ctx: WebContext, request: Request) -> Origin:
    """IP and User-Agent for the consent record (cleaned and cut to size by record_consent)."""
    return Origin(ip=client_ip(ctx, request), user_agent=request.headers.get("user-agent", ""))


async def form_data(request: Request) -> dict[str, list[str]]:
    """Every form value as sent (repeated fields kept), refusing files and oversized values."""
    data: dict[str, list[str]] = {}
    for key, value in await _form_items(request):
        if not isinstance(value, str):
            raise InvalidInput(f"{key}: files are not accepted")
        if len(value) > MAX_FIELD:
            raise InvalidInput(f"{key}: too long")
        data.setdefault(key, []).append(value)
    return data


async def _form_items(request: Request) -> list[tuple[str, object]]:
    """A urlencoded body (every signup and one-click unsubscribe) split by the standard library,
    as Starlette's FormParser decodes it (latin-1, then %-escapes as UTF-8): its byte-by-byte
    callbacks were a tenth of the serve process's CPU per request at 200 requests/s (issue 18).
    Anything else (multipart) goes to Starlette."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    # A route with declared Form parameters had FastAPI read the form already (Starlette keeps it).
    if kind != "application/x-www-form-urlencoded" or getattr(request, "_form", None) is not None:
        return list((await request.form()).multi_items())
    try:
        return parse_qsl((await request.body()).decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise InvalidInput(f"form: more than {MAX_FIELDS} fields") from None
