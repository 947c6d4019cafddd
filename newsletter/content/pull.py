"""`newsletter content pull`: the publication's site as a source of comparisons.

[content] feed_url serves a JSON feed of comparisons in the import schema. A pull is a
conditional GET (If-None-Match / If-Modified-Since from the last good pull's validators, kept in
content_feed): an unchanged feed answers 304 and nothing is written. A changed feed is read
within a size limit and timeouts, validated whole (one bad item and nothing is imported: the
error names the item and the field), then upserted by slug in one transaction, each change a
revision with source "pull". A dry run makes the same changes in a transaction it rolls back,
so the diff it shows is exactly what a pull would write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import requests
from sqlalchemy import Engine
from sqlmodel import Session

from newsletter import __version__
from newsletter.content import publishing
from newsletter.content.diff import describe
from newsletter.content.importer import Counts, ImportError_, parse_feed, upsert_comparison
from newsletter.content.models import FeedState
from newsletter.content.revisions import Origin
from newsletter.content.schema import ComparisonIn
from newsletter.content.snapshot import snapshot
from newsletter.db import session_scope, utcnow
from newsletter.errors import UserError

MAX_BYTES = 5 * 1024 * 1024  # a feed of a few hundred comparisons is well under 1 MB
TIMEOUT = (5, 30)  # seconds to connect, seconds between bytes


class PullError(UserError):
    """The feed could not be fetched or is not valid; nothing was imported."""


@dataclass(frozen=True)
class Fetched:
    body: bytes
    etag: str | None
    last_modified: str | None


@dataclass
class PullResult(Counts):
    url: str = ""
    not_modified: bool = False
    dry_run: bool = False
    changes: dict[str, list[str]] = field(default_factory=dict)  # slug -> readable diff lines


def fetch(url: str, etag: str | None = None, last_modified: str | None = None) -> Fetched | None:
    """The feed's body, or None when the server says it has not changed since these validators."""
    headers = {"Accept": "application/json", "User-Agent": f"weekly-verdicts/{__version__} (content pull)"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with requests.get(url, headers=headers, timeout=TIMEOUT, stream=True) as response:
            if response.status_code == 304:
                return None
            if response.status_code != 200:
                raise PullError(f"feed {url}: the server answered HTTP {response.status_code}, not 200; "
                                "nothing imported")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_BYTES:
                raise PullError(f"feed {url}: {declared} bytes is over the {MAX_BYTES // 1024 // 1024} MB limit")
            body = bytearray()
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_BYTES:
                    raise PullError(f"feed {url}: over the {MAX_BYTES // 1024 // 1024} MB limit; nothing imported")
            return Fetched(bytes(body), response.headers.get("ETag"), response.headers.get("Last-Modified"))
    except requests.RequestException as exc:
        reason = " ".join(str(exc).split())[:300]
        raise PullError(f"feed {url}: could not fetch it ({type(exc).__name__}: {reason}); nothing imported") from None


def _parse(url: str, body: bytes) -> list[ComparisonIn]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PullError(f"feed {url}: not UTF-8 (byte {exc.start}); nothing imported") from None
    try:
        return parse_feed(f"feed {url}", text)
    except ImportError_ as exc:
        raise PullError(str(exc)) from None


def _apply(session: Session, comparisons: list[ComparisonIn], origin: Origin, result: PullResult) -> None:
    for data in comparisons:
        existing = publishing.find(session, data.slug)
        before = snapshot(session, existing) if existing is not None else None
        if not result.add(upsert_comparison(session, data, origin)):
            continue
        after = publishing.find(session, data.slug)
        assert after is not None
        result.changes[data.slug] = describe(before, snapshot(session, after))


def pull(engine: Engine, url: str, origin: Origin, dry_run: bool = False) -> PullResult:
    """Fetch, validate and upsert the feed (see the module's docstring). Raises PullError."""
    if not url:
        raise PullError("[content] feed_url is not set: there is no feed to pull")
    with session_scope(engine) as session:
        known = session.get(FeedState, url)
        validators = (known.etag, known.last_modified) if known is not None else (None, None)
    fetched = fetch(url, *validators)
    result = PullResult(url=url, dry_run=dry_run)
    if fetched is None:
        result.not_modified = True
        return result
    comparisons = _parse(url, fetched.body)
    if dry_run:
        with Session(engine) as session:
            try:
                _apply(session, comparisons, origin, result)
            finally:
                session.rollback()
        return result
    with session_scope(engine) as session:
        _apply(session, comparisons, origin, result)
        state = session.get(FeedState, url) or FeedState(url=url)
        # a validator too long to keep is not kept: the next pull is then unconditional
        state.etag = fetched.etag if fetched.etag and len(fetched.etag) <= 300 else None
        state.last_modified = fetched.last_modified if fetched.last_modified and len(fetched.last_modified) <= 100 else None
        state.fetched_at = utcnow()
        session.add(state)
    return result
