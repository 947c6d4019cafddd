"""The settings page for owners (/admin/settings): the configuration this server runs with,
read-only, every secret shown only as "set" or "not set".

Settings are not edited from the web on purpose: config.toml (in the operator's version
control) and the environment (for secrets) stay the one source, so a restart never undoes a
change made in a browser and no secret ever passes through a page. The page tells owners
which file and which environment variable change what.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from fastapi.responses import HTMLResponse
from pydantic import BaseModel, SecretStr

from newsletter.web.console.deps import Console
from newsletter.web.console.views import Owner, console_router, page

router = console_router()


def _shown(value: object) -> str:
    if isinstance(value, SecretStr):
        return "set" if value.get_secret_value() else "not set"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(str(item) for item in value) or "—"
    return "—" if value in ("", None) else str(value)


def _without_password(url: str) -> str:
    """A database URL with its password (if any) replaced, so the page never shows it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def rows(model: BaseModel, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, shown value) for every setting, sections flattened: "mail.smtp.port"."""
    found: list[tuple[str, str]] = []
    for name in type(model).model_fields:
        value, key = getattr(model, name), f"{prefix}{name}"
        if isinstance(value, BaseModel):
            found += rows(value, key + ".")
        elif key == "database.url":
            found.append((key, _without_password(str(value))))
        else:
            found.append((key, _shown(value)))
    return found


@router.get("/settings", response_class=HTMLResponse)
def settings(ctx: Console, me: Owner) -> HTMLResponse:
    sections: dict[str, list[tuple[str, str]]] = {}
    for key, value in rows(ctx.settings):
        sections.setdefault(key.split(".", 1)[0], []).append((key, value))
    return page(ctx, "settings.html", me=me, title="Settings", current="settings", sections=sections)
