"""Puts the console (/admin) and the REST API (/api/v1) on the app: one call from the app factory.

The routers are module-level; their handlers read the context set here (app.state.console)
through the `Console` dependency alias in deps.py.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.web.console import admin, api, api_imports, import_pages
from newsletter.web.console.deps import ConsoleContext
from newsletter.web.deps import WebContext


# Each console page module and API module has one module-level router; a new module goes here.
MODULES = (admin, api, import_pages, api_imports)


def include_console(app: FastAPI, settings: Settings, engine: Engine, secret: str, web: WebContext) -> None:
    app.state.console = ConsoleContext(settings=settings, engine=engine, secret=secret, web=web)
    for module in MODULES:
        app.include_router(module.router)
