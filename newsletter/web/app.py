"""The FastAPI app factory: state, middleware, routers and error pages; the routes are in the modules.

With `with_sender`, a background thread in the same process (with `sender_process`, a child
process at `[delivery] nice`: what `newsletter serve` does on PostgreSQL) delivers queued
transactional mail (confirmations; newsletter/delivery/background.py), so one
`newsletter serve` is a working deployment; `--no-sender` leaves that to `newsletter worker`.
"""

from __future__ import annotations

import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from newsletter.config import Settings
from newsletter.content.categories import CachedCategories
from newsletter.db import get_engine
from newsletter.delivery.background import BackgroundSender, SenderProcess
from newsletter.subscribers.import_runner import ImportRunner
from newsletter.web.console.import_pages import record_job_end
from newsletter.secret_key import load_secret_key
from newsletter.web import archive, community, pages, preferences, subscription, tools, tracking, votes, webhooks
from newsletter.web.console.api_base import http_error as api_http_error
from newsletter.web.console.setup import include_console
from newsletter.web.deps import WebContext
from newsletter.web.responses import FromTestCopy, from_test_copy, page
from newsletter.web.security import SecurityHeaders, allowed_hosts, security_headers
from newsletter.web.webhooks import WebhookContext

log = logging.getLogger(__name__)


def server_options(settings: Settings, host: str | None = None, port: int | None = None) -> dict:
    """uvicorn's options for `serve` and `run`: httptools' C parser and uvloop (dependencies: at
    200 requests/s h11 and asyncio's loop cost CPU the routes need; BENCHMARKS.md, "Web under
    load"); no Server header; no proxy headers: the app applies [web] trusted_proxy_hops itself; no
    access log unless [web] access_log (it records readers' personal links; issue 18)."""
    return {"host": host or settings.web.host, "port": port or settings.web.port, "log_level": "info",
            "server_header": False, "proxy_headers": False, "http": "httptools", "loop": "uvloop",
            "access_log": settings.web.access_log}


def link_warning(settings: Settings, port: int | None) -> str | None:
    """When `--port` moves a local server off the port `[site] base_url` names, every link in mails
    and the signup form's action still point at base_url's: say so at start (an outside trial
    served on 18431 a form that posted to :8000)."""
    url = urlsplit(settings.site.base_url)
    if port is None or url.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    named = url.port or (443 if url.scheme == "https" else 80)
    if named == port:
        return None
    fixed = url._replace(netloc=f"{url.hostname}:{port}").geturl()
    return (f"warning: [site] base_url is {settings.site.base_url}, so the pages' forms and the mails' links "
            f"point at port {named}, not {port}; set NEWSLETTER_SITE__BASE_URL={fixed} to serve here")


def settle_heap() -> None:
    """Exempt everything alive now (the app, its routes, templates, SQLAlchemy's and pydantic's
    machinery: ~170,000 objects) from the garbage collector's passes: a full pass over them took
    60 ms with the GIL held, every request in the process waiting behind it, and the signups'
    survivors (the throttle's windows, cached statements) bring one on every minute or so at 200
    requests/s (issue 18). They stay alive for the life of the process anyway; only cycles among
    them go uncollected. `newsletter serve` calls it once the app is built."""
    gc.collect()
    gc.freeze()


def route_threads(engine: Engine) -> int:
    """Threads for the routes: as many as the PostgreSQL pool keeps connections (size_threadpool);
    AnyIO's default (40) on SQLite."""
    return engine.pool.size() if engine.dialect.name == "postgresql" else 40


def size_threadpool(engine: Engine) -> None:
    """As many threads for the routes as the database pool keeps connections (PostgreSQL: 10).

    AnyIO's default is 40 threads. Under a burst of signups 40 threads took 40 connections (the
    pool's overflow) and shared two cores and one GIL: every request got slower, and the p99 with
    them (issue 18). With one thread per pooled connection, a request that finds all busy waits in
    the event loop's queue, costing nothing, and the threads that run finish sooner. SQLite keeps
    the default: its pool is not a limit of the same kind (one writer, WAL readers)."""
    if engine.dialect.name == "postgresql":
        from anyio import to_thread

        to_thread.current_default_thread_limiter().total_tokens = route_threads(engine)


def create_app(settings: Settings, engine: Engine | None = None, secret: str | None = None,
               with_sender: bool = True, sender_process: bool = False) -> FastAPI:
    engine = engine or get_engine(settings.database.url)
    secret = secret or load_secret_key(settings)
    sender: BackgroundSender | SenderProcess | None = None
    if with_sender:
        sender = SenderProcess(settings, secret) if sender_process else BackgroundSender(engine, settings, secret)
    # Readers' CSV imports run beside the sender (newsletter/subscribers/import_runner.py).
    categories = CachedCategories(engine)  # every signup reads them (newsletter/content/categories.py)
    imports = ImportRunner(engine, categories, on_finish=record_job_end) if with_sender else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        size_threadpool(engine)
        for runner in (sender, imports):
            if runner:
                runner.start()
        yield
        for runner in (sender, imports):
            if runner:
                runner.shutdown()
        app.state.web.threads.shutdown(wait=False)

    app = FastAPI(title=settings.site.name, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json")  # the schema only (schemathesis checks it); no docs pages
    app.state.web = WebContext(settings=settings, engine=engine, secret=secret,
                               categories=categories, threads=ThreadPoolExecutor(route_threads(engine), "web"),
                               on_queued=(sender.wake.set if sender else (lambda: None)))
    app.state.import_runner = imports
    app.state.webhooks = WebhookContext(settings=settings, engine=engine)  # tests swap its fetchers
    # Added last = outermost: the security headers also go on TrustedHost's 400 answers.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings), www_redirect=False)
    app.add_middleware(SecurityHeaders, settings=settings)
    for module in (subscription, preferences, webhooks, votes, tracking, community):
        app.include_router(module.router)
    include_console(app, settings, engine, secret, app.state.web)
    app.include_router(archive.router)  # before pages: /issues/feed.rss is not /issues/{id}
    app.include_router(pages.router)
    app.include_router(tools.router)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(FromTestCopy, answer_test_copy)
    app.add_exception_handler(Exception, server_error)
    return app


async def answer_test_copy(request: Request, exc: FromTestCopy) -> Response:
    """A personal link of an editor's test copy, from any route: what it does in a reader's copy."""
    return from_test_copy(request.app.state.web.settings.site, exc.purpose)


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if request.url.path.startswith("/api/"):  # the REST API answers in JSON, also for 404 and 405
        return api_http_error(exc.status_code, exc.headers)
    heading = "Not found" if exc.status_code == 404 else "That did not work"
    return page(request.app.state.web.settings.site, "message.html", exc.status_code, title=heading,
                heading=heading, paragraphs=["Check the address, or start from the signup page."])


async def validation_error(request: Request, _exc: RequestValidationError) -> HTMLResponse:
    return page(request.app.state.web.settings.site, "message.html", 422, title="Invalid request",
                heading="That request was not valid", paragraphs=["Check the address, or start from the signup page."])


async def server_error(request: Request, exc: Exception) -> Response:
    settings = request.app.state.web.settings
    log.exception("unhandled error: %s", exc)
    if request.url.path.startswith("/api/"):
        response = api_http_error(500)
    else:
        response = page(settings.site, "message.html", 500, title="Error",
                        heading="Something went wrong on our side",
                        paragraphs=["Nothing was lost. Please try again in a minute."])
    # This answer comes from Starlette's outermost error middleware, outside SecurityHeaders.
    for name, value in security_headers(settings, request.url.path, response.body):
        response.headers[name.decode()] = value.decode()
    return response
