"""Puts the console (/admin) and the REST API (/api/v1) on the app: one call from the app factory.

The routers are module-level; their handlers read the context set here (app.state.console)
through the `Console` dependency alias in deps.py.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware
from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.web.console import admin, api, api_comparisons, api_imports, api_issues, api_readers, api_stats, \
    audit_pages, comparisons_pages, followups_pages, import_pages, issues_pages, issues_send_pages, owners_pages, readers_pages, \
    comparison_history, settings_page, stats_pages, webhooks_pages
from newsletter.web.console.deps import ConsoleContext
from newsletter.web.console.idempotency import IdempotencyMiddleware
from newsletter.web.deps import WebContext


# Each console page module and API module has a module-level `router` (and may have a second,
# `api`, for its REST routes); a new module goes here. Order matters where paths overlap: a module
# with fixed paths (/readers/import) comes before one with a parameter in their place (/readers/{id}).
MODULES = (admin, api, audit_pages, settings_page, owners_pages, webhooks_pages, import_pages, api_imports,
           api_readers, readers_pages, api_issues, issues_pages, issues_send_pages, stats_pages, api_stats,
           comparison_history, comparisons_pages, api_comparisons, followups_pages)


def include_console(app: FastAPI, settings: Settings, engine: Engine, secret: str, web: WebContext) -> None:
    app.state.console = ConsoleContext(settings=settings, engine=engine, secret=secret, web=web)
    for module in MODULES:
        app.include_router(module.router)
        if hasattr(module, "api"):
            app.include_router(module.api)
    # Innermost (appended, not inserted first as add_middleware does): a replayed answer still
    # passes the host check and gets the security headers like any other.
    app.user_middleware.append(Middleware(IdempotencyMiddleware))
