"""The FastAPI app: subscription pages, the web view of sent issues, comparison pages.

With `with_sender`, a background thread in the same process delivers queued
transactional mail (confirmations), so one `newsletter serve` is a working
deployment; `--no-sender` leaves that to `newsletter worker`.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Annotated

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy import Engine, select
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from newsletter.config import Settings
from newsletter.content.categories import publication_categories
from newsletter.db import get_engine, session_scope
from newsletter.delivery.transports import make_transport
from newsletter.issues.models import Issue, IssueState
from newsletter.secret_key import load_secret_key
from newsletter.templating import render
from newsletter.votes import PUBLIC_VOTE_TOKEN
from newsletter.web_security import SecurityHeaders, allowed_hosts, security_headers
from subscribers.routes import WebContext, make_router

log = logging.getLogger(__name__)
PURGE_EVERY = 3600.0  # seconds between purges of expired unconfirmed signups


def categories(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return publication_categories(session)


class BackgroundSender:
    """Delivers queued transactional mail; wakes at once when a request queued some."""

    def __init__(self, engine: Engine, settings: Settings, secret: str, interval: float = 5.0) -> None:
        self.engine, self.settings, self.secret, self.interval = engine, settings, secret, interval
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="transactional-sender", daemon=True)

    def _run(self) -> None:
        # A worker like any other: one id and a heartbeat, so a killed web process's mails are
        # taken over by the workers within seconds (newsletter/delivery/heartbeat.py).
        from newsletter.delivery.heartbeat import Heartbeat
        from newsletter.delivery.mailqueue import send_queued
        from newsletter.delivery.queue import worker_id

        worker = worker_id()
        transport = make_transport(self.settings)
        purged_at: float | None = None
        try:
            with Heartbeat(self.engine, worker, self.settings.delivery.heartbeat_seconds):
                while not self.stop.is_set():
                    self.wake.wait(self.interval)
                    self.wake.clear()
                    try:
                        while send_queued(self.engine, self.settings, transport, self.secret, limit=50,
                                          worker=worker).worked:
                            pass
                        if purged_at is None or time.monotonic() - purged_at > PURGE_EVERY:
                            purged_at = time.monotonic()
                            self._purge()
                    except Exception:  # keep serving pages; the queue keeps the mail
                        log.exception("transactional sender failed; will retry")
        finally:
            transport.close()

    def _purge(self) -> None:
        """`serve` alone (no scheduler) is a whole deployment: it purges expired unconfirmed signups too."""
        from subscribers.purge import purge_unconfirmed

        report = purge_unconfirmed(self.engine, self.settings)
        if report.purged:
            log.info("purged %d unconfirmed signups whose confirmation expired", report.purged)

    def start(self) -> None:
        self.thread.start()
        self.wake.set()

    def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        self.thread.join(timeout=30)


def create_app(settings: Settings, engine: Engine | None = None, secret: str | None = None,
               with_sender: bool = True) -> FastAPI:
    engine = engine or get_engine(settings.database.url)
    secret = secret or load_secret_key(settings)
    sender = BackgroundSender(engine, settings, secret) if with_sender else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if sender:
            sender.start()
        yield
        if sender:
            sender.shutdown()

    app = FastAPI(title=settings.site.name, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")  # the schema only (schemathesis checks it); no docs pages
    ctx = WebContext(settings=settings, engine=engine, secret=secret, categories=lambda: categories(engine),
                     on_queued=(sender.wake.set if sender else (lambda: None)))
    app.state.web = ctx
    # Added last = outermost: the security headers also go on TrustedHost's 400 answers.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings), www_redirect=False)
    app.add_middleware(SecurityHeaders, settings=settings)
    app.include_router(make_router(ctx))
    from newsletter.webhooks.routes import WebhookContext, make_router as make_webhook_router

    app.state.webhooks = WebhookContext(settings=settings, engine=engine)  # tests swap its fetchers
    app.include_router(make_webhook_router(app.state.webhooks))
    from newsletter.votes import make_router as vote_router

    app.include_router(vote_router(settings, engine, secret))
    from newsletter.tracking.routes import make_router as tracking_router

    app.include_router(tracking_router(settings, engine, secret))
    from newsletter.console.setup import include_console

    include_console(app, settings, engine, secret, ctx)
    site = settings.site

    def page(template: str, status: int = 200, **values) -> HTMLResponse:
        return HTMLResponse(render(f"web/{template}", {"site": site, **values}), status_code=status)

    @app.get("/issues/{issue_id}", response_class=HTMLResponse)
    def web_view(issue_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> HTMLResponse:
        """The issue as subscribers got it, without anyone's personal links."""
        from newsletter.issues.render import compile_issue
        from newsletter.issues.view import build_issue_view

        with session_scope(engine) as session:
            issue = session.get(Issue, issue_id)
            if issue is None or issue.state not in (IssueState.sending.value, IssueState.sent.value):
                return page("message.html", 404, title="Not found", heading="No such issue",
                            paragraphs=["This issue does not exist or has not been published yet."])
            view = replace(build_issue_view(session, settings, issue), track_opens=False, track_clicks=False)
            compiled = compile_issue(view)
        values = {"email": "a subscriber", "unsubscribe_url": f"{site.base_url}/",
                  "preferences_url": f"{site.base_url}/", "vote_token": PUBLIC_VOTE_TOKEN, "track_token": ""}
        import html

        return HTMLResponse(compiled.html.fill(values, lambda v: html.escape(v, quote=True)))

    @app.get("/compare/{slug}", response_class=HTMLResponse)
    def comparison_page(slug: str) -> HTMLResponse:
        from newsletter.content.page import comparison_page_values

        with session_scope(engine) as session:
            values = comparison_page_values(session, slug)
        if values is None:
            return page("message.html", 404, title="Not found", heading="No such comparison",
                        paragraphs=["We have not compared these tools (yet)."])
        return page("comparison.html", **values)

    @app.get("/healthz", response_class=PlainTextResponse)
    def health() -> str:
        with session_scope(engine) as session:
            session.execute(select(1))
        return "ok"

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/"):  # the REST API answers in JSON, also for 404 and 405
            from newsletter.console.api import http_error as api_http_error

            return api_http_error(exc.status_code, exc.headers)
        heading = "Not found" if exc.status_code == 404 else "That did not work"
        return page("message.html", exc.status_code, title=heading, heading=heading,
                    paragraphs=["Check the address, or start from the signup page."])

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, _exc: RequestValidationError) -> HTMLResponse:
        return page("message.html", 422, title="Invalid request", heading="That request was not valid",
                    paragraphs=["Check the address, or start from the signup page."])

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error: %s", exc)
        if request.url.path.startswith("/api/"):
            from newsletter.console.api import http_error as api_http_error

            response = api_http_error(500)
        else:
            response = page("message.html", 500, title="Error", heading="Something went wrong on our side",
                            paragraphs=["Nothing was lost. Please try again in a minute."])
        # This answer comes from Starlette's outermost error middleware, outside SecurityHeaders.
        for name, value in security_headers(settings, request.url.path, response.body):
            response.headers[name.decode()] = value.decode()
        return response

    return app
