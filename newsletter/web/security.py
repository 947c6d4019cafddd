"""Browser safety for every page: allowed Host headers, Origin checks, security headers.

Why here and not per route: a header that one route forgets is a hole, so one ASGI middleware
adds them to every response (pages, error pages, webhooks, redirects). The CSP allows inline
<style> blocks only by their SHA-256, computed from each HTML body as it leaves, so template
overrides and CSS edits need no matching change here. docs/web.md lists each defence and its limits.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from newsletter.config import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

# Pages whose URL carries a personal token: no Referer at all, so the token never leaks to a link target.
TOKEN_PATHS = ("/confirm/", "/unsubscribe/", "/preferences/", "/vote/", "/c/", "/o/")
MAX_HASHED_BODY = 2_000_000
MAX_REMEMBERED, MAX_REMEMBERED_BODY = 256, 100_000  # SecurityHeaders.headers_for: at most ~25 MB held
EMBEDDABLE = ("/embed", "/subscribe")  # the embedded form and the answer it shows inside the frame


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lower-cased; "" when it has none (e.g. "null")."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    default = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port
    except ValueError:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def allowed_hosts(settings: Settings) -> list[str]:
    """base_url's host, [web] allowed_hosts, and the loopback names.

    Loopback names are safe to accept: only a client on this machine sends them (DNS rebinding
    arrives with the attacker's own name, which is refused), and they let `newsletter serve` with
    the defaults work at http://localhost:8000 and local health checks reach /healthz.
    """
    host = (urlsplit(settings.site.base_url).hostname or "").lower()
    hosts = [host, *settings.web.allowed_hosts, "127.0.0.1", "localhost"]
    return list(dict.fromkeys(h for h in hosts if h))


def allowed_origins(settings: Settings) -> frozenset[str]:
    return _allowed_origins(settings.site.base_url, tuple(settings.web.embed_origins))


@lru_cache(maxsize=16)
def _allowed_origins(base_url: str, embed_origins: tuple[str, ...]) -> frozenset[str]:
    """Parsed once per configuration, not on every POST (issue 18)."""
    return frozenset({origin_of(base_url), *embed_origins} - {""})


def post_origin_allowed(settings: Settings, headers: dict[str, str], host: str) -> bool:
    """Did this POST come from our own page (or a configured embedding site)?

    Origin, else Referer; a request with neither (curl, old clients) passes here and still needs
    the visitor-bound form token. "null" (sandboxed frames, no-referrer documents) is refused.
    A page served from the request's own Host is same-origin: Host was checked by TrustedHost.
    """
    sent = headers.get("origin") or headers.get("referer")
    if sent is None:
        return True
    origin = origin_of(sent)
    if not origin:
        return False
    if origin in allowed_origins(settings):
        return True
    return urlsplit(origin).netloc == host.lower()


class PathKind(NamedTuple):
    """What of a path the headers depend on: the same headers for every path of a kind and body."""

    embeddable: bool
    mail_html: bool  # /issues/…: mail HTML, inline styles by design, remote images
    console: bool  # /admin: the console's one same-origin script
    token_page: bool


def path_kind(path: str) -> PathKind:
    return PathKind(path in EMBEDDABLE, path.startswith("/issues/"), path == "/admin" or path.startswith("/admin/"),
                    path.startswith(TOKEN_PATHS))


def _csp(settings: Settings, kind: PathKind, style_hashes: list[str]) -> str:
    if kind.embeddable:
        ancestors = " ".join(["'self'", *settings.web.embed_origins])
    else:
        ancestors = "'none'"
    if kind.mail_html:
        styles, images = "'self' 'unsafe-inline'", "'self' https: data:"
    else:
        styles, images = " ".join(["'self'", *style_hashes]), "'self' data:"
    form_targets = " ".join(["'self'", origin_of(settings.site.base_url)]).strip()
    # The console's progress page follows a send with one same-origin script (/admin/static/);
    # every other page, and every public one, runs none.
    scripts = "'self'" if kind.console else "'none'"
    return (f"default-src 'self'; style-src {styles}; img-src {images}; script-src {scripts}; "
            f"object-src 'none'; base-uri 'none'; form-action {form_targets}; frame-ancestors {ancestors}")


def style_blocks(body: bytes) -> list[bytes]:
    """The contents of every `<style …>…</style>` block (tags in any case), by plain searches in a lower-cased copy: the
    regex with re.I took 0.2 ms per page, on every answer (issue 18); this takes a few µs."""
    lowered, blocks, start = body.lower(), [], 0
    while (opening := lowered.find(b"<style", start)) != -1:
        end_of_tag = lowered.find(b">", opening)
        closing = lowered.find(b"</style>", end_of_tag) if end_of_tag != -1 else -1
        if closing == -1:
            break
        blocks.append(body[end_of_tag + 1:closing])
        start = closing + len(b"</style>")
    return blocks


@lru_cache(maxsize=64)
def _style_hash(block: bytes) -> str:
    """A style block's CSP source; the pages share a few blocks, so each is hashed once."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(block).digest()).decode() + "'"


def style_hashes(body: bytes) -> list[str]:
    return sorted({_style_hash(block) for block in style_blocks(body)})


def security_headers(settings: Settings, path: str, body: bytes | None) -> list[tuple[bytes, bytes]]:
    return _headers(settings, path_kind(path), body)


def _headers(settings: Settings, kind: PathKind, body: bytes | None) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-security-policy", _csp(settings, kind, style_hashes(body or b"")).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer" if kind.token_page else b"strict-origin-when-cross-origin"),
    ]
    if not kind.embeddable:
        headers.append((b"x-frame-options", b"DENY"))  # for browsers without frame-ancestors
    return headers


class SecurityHeaders:
    """Pure ASGI middleware: holds back the response start until the (single) HTML body is known,
    hashes its <style> blocks into the CSP, and adds the headers a route did not set itself."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.known: dict[tuple[PathKind, bytes | None], list[tuple[bytes, bytes]]] = {}  # see `headers_for`

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        held: list[Message] = []

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                held.append(message)
                return
            if message["type"] == "http.response.body" and held:
                start = held.pop()
                body = message.get("body", b"")
                whole = not message.get("more_body") and len(body) <= MAX_HASHED_BODY
                self._add(start, path, body if whole else None)
                await send(start)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def headers_for(self, path: str, body: bytes | None) -> list[tuple[bytes, bytes]]:
        """security_headers, remembered by path kind and body: the busiest answers (the signup's and
        the one-click unsubscribe's, WebContext.same_answer) are the same bytes every time, and
        building their CSP was a twentieth of the serve process's CPU per request (issue 18)."""
        if body is not None and len(body) > MAX_REMEMBERED_BODY:
            return security_headers(self.settings, path, body)
        key = (path_kind(path), body)
        headers = self.known.get(key)
        if headers is None:
            if len(self.known) >= MAX_REMEMBERED:
                self.known.clear()
            headers = self.known[key] = _headers(self.settings, key[0], body)
        return headers

    def _add(self, start: Message, path: str, body: bytes | None) -> None:
        present = {name.lower() for name, _ in start.get("headers", [])}
        extra = [(k, v) for k, v in self.headers_for(path, body) if k not in present]
        start["headers"] = [*start.get("headers", []), *extra]
