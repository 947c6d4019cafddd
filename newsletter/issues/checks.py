"""Pre-send checks: what would make an issue fail its readers once it is out.

Each check is a small function of one `Rendered` issue that returns a `CheckResult`. Sending
is irreversible, so `issue send`, `issue schedule` and the scheduler refuse while a check
fails ("fail"), unless the editor overrides them explicitly; warnings are only reported.
The issue is rendered exactly as the send path renders it (compile once, fill the slots),
with the longest recipient a reader can have, so the size measured is the largest copy.
"""

from __future__ import annotations

import html
import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import urlsplit

from sqlalchemy import Engine, select

from newsletter import PROJECT_ROOT
from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.errors import UserError
from newsletter.issues.fit import LONGEST_EMAIL, LONGEST_ID
from newsletter.issues.links import recipient_links
from newsletter.content.models import Comparison
from newsletter.issues.models import Issue, IssueItem
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from newsletter.weeks import current_week, week_bounds

FAIL, WARNING, OK = "fail", "warning", "ok"
# Gmail clips an HTML part over 102 KB and hides the rest, footer and unsubscribe link included.
MAX_HTML_BYTES = 100 * 1024
SCHEMES = frozenset({"http", "https", "mailto"})
CHECK_SECRET = "pre-send-check-links-are-never-sent"


@dataclass(frozen=True)
class CheckResult:
    name: str
    level: str  # FAIL, WARNING or OK
    message: str


@dataclass(frozen=True)
class Rendered:
    """One issue as a reader gets it, and what the checks need to judge it."""

    issue_id: int
    week: str
    html: str
    text: str
    settings: Settings
    now: datetime
    checked: tuple[tuple[str, datetime], ...] = ()  # each comparison's slug and when its facts were checked


class ChecksFailed(UserError):
    """An issue fails a pre-send check; the message lists every failing check."""

    def __init__(self, issue_id: int, failing: list[CheckResult], override: str) -> None:
        lines = [f"issue {issue_id} fails pre-send checks (see `newsletter issue check {issue_id}`):"]
        lines += [f"  {result.name}: {result.message}" for result in failing]
        lines.append(f"fix them, or send anyway with {override}")
        super().__init__("\n".join(lines))
        self.failing = failing


def _real(settings: Settings) -> bool:
    """Anything but the file transport reaches real inboxes."""
    return settings.mail.transport != "file"


def check_size(r: Rendered) -> CheckResult:
    size = len(r.html.encode("utf-8"))
    kb = f"{size / 1024:.1f} KB"
    if size > MAX_HTML_BYTES:
        return CheckResult("size", FAIL, f"the HTML is {kb}, over {MAX_HTML_BYTES // 1024} KB: Gmail clips it "
                                         "(at 102 KB) and hides the footer with the unsubscribe link; "
                                         "remove a comparison or shorten the editor's note")
    return CheckResult("size", OK, f"the HTML is {kb} (limit {MAX_HTML_BYTES // 1024} KB)")


def check_https(r: Rendered) -> CheckResult:
    base = r.settings.site.base_url
    if base.startswith("https://"):
        return CheckResult("https", OK, f"[site] base_url is {base}")
    if not _real(r.settings):
        return CheckResult("https", OK, f"[site] base_url is {base} (fine for the file transport)")
    return CheckResult("https", FAIL, f"[site] base_url is {base}: one-click unsubscribe (RFC 8058) needs https "
                                      "and readers' links must work outside this machine")


@lru_cache(maxsize=1)
def sample_postal_address() -> str:
    """The placeholder address shipped in the repository's config.toml."""
    try:
        with open(PROJECT_ROOT / "config.toml", "rb") as handle:
            return str(tomllib.load(handle).get("site", {}).get("postal_address", ""))
    except (OSError, tomllib.TOMLDecodeError):
        return ""


def check_postal_address(r: Rendered) -> CheckResult:
    address = r.settings.site.postal_address.strip()
    sample = sample_postal_address()
    if address and address != sample:
        return CheckResult("postal-address", OK, f"[site] postal_address is {address!r}")
    problem = "is empty" if not address else "is still the sample from the shipped config.toml"
    level = FAIL if _real(r.settings) else WARNING
    return CheckResult("postal-address", level, f"[site] postal_address {problem}: bulk mail must carry the "
                                                "sender's real postal address (CAN-SPAM)")


def check_week(r: Rendered) -> CheckResult:
    zone = r.settings.site.zone
    start, _end = week_bounds(r.week, zone)
    now_start, _ = week_bounds(current_week(zone, r.now), zone)
    if now_start - start > timedelta(days=7):
        weeks = (now_start - start).days // 7
        return CheckResult("week", FAIL, f"the issue is for {r.week}, {weeks} weeks before "
                                         f"{current_week(zone, r.now)}: readers would get old news as new")
    return CheckResult("week", OK, f"the issue is for {r.week}")


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [value or "" for name, value in attrs if name == "href"]
        self.ids.update(value for name, value in attrs if name == "id" and value)


def html_links(document: str) -> list[str]:
    """Every href of the HTML part; an in-mail link ("#c2", the "In this issue" list) counts only
    when no element of the mail has that id, as "#c2 (no such element)", so a dead one fails."""
    parser = _Hrefs()
    parser.feed(document)
    parser.close()
    return [href for href in parser.hrefs if not (href.startswith("#") and href[1:] in parser.ids)]


def text_links(text: str) -> list[str]:
    """Every word of the text part that names a scheme (`x://` or `mailto:`), trailing punctuation off."""
    links = []
    for word in text.split():
        word = word.strip("<>()[]\"'.,;!?")
        if "://" in word or word.lower().startswith("mailto:"):
            links.append(word)
    return links


def link_problem(url: str) -> str | None:
    """Why a link would not work in a reader's mail client, or None."""
    if not url.strip():
        return "empty link"
    if url.startswith("#"):
        return "leads to no element of the mail"
    if any(ch.isspace() for ch in url):
        return "contains a space"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        return f"does not parse ({exc})"
    if parts.scheme.lower() not in SCHEMES:
        return f"scheme {parts.scheme or '(none)'!r} is not http, https or mailto"
    if parts.scheme.lower() == "mailto":
        return None if "@" in parts.path else "mailto: without an address"
    if not parts.hostname:
        return "no host"
    return None


def check_links(r: Rendered) -> CheckResult:
    found = [("HTML", url) for url in html_links(r.html)] + [("text", url) for url in text_links(r.text)]
    bad = [(part, url, problem) for part, url in found if (problem := link_problem(url))]
    if bad:
        shown = "; ".join(f"{part} {url[:120]!r}: {problem}" for part, url, problem in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        return CheckResult("links", FAIL, f"{len(bad)} malformed of {len(found)} links: {shown}{more}")
    return CheckResult("links", OK, f"{len(found)} links, all well-formed")


def check_dkim(r: Rendered) -> CheckResult:
    if r.settings.mail.dkim.enabled:
        return CheckResult("dkim", OK, f"signing with selector {r.settings.mail.dkim.selector!r}")
    if not _real(r.settings):
        return CheckResult("dkim", OK, "off (fine for the file transport)")
    return CheckResult("dkim", WARNING, "[mail.dkim] is off: Gmail and Yahoo require bulk mail signed by the "
                                        "From domain (unless your provider signs it for that domain)")


def check_stale(r: Rendered) -> CheckResult:
    """A verdict on facts nobody has checked for months (prices move, products ship) is a
    warning, not a failure: the editor decides whether it still holds."""
    days = r.settings.content.stale_after_days
    stale = [(slug, at) for slug, at in r.checked if at < r.now - timedelta(days=days)]
    if not stale:
        return CheckResult("stale", OK, f"every comparison's facts were checked in the last {days} days")
    shown = "; ".join(f"{slug} (checked {at:%Y-%m-%d}, {(r.now - at).days} days ago)" for slug, at in stale[:5])
    more = f" (and {len(stale) - 5} more)" if len(stale) > 5 else ""
    return CheckResult("stale", WARNING, f"{len(stale)} comparison(s) last checked more than {days} days ago "
                                         f"([content] stale_after_days): {shown}{more}; check their facts and "
                                         "mark them checked (console, or `newsletter content checked SLUG`)")


CHECKS: tuple[Callable[[Rendered], CheckResult], ...] = (
    check_size, check_https, check_postal_address, check_week, check_links, check_dkim, check_stale,
)


def render_for_checks(engine: Engine, settings: Settings, issue_id: int, now: datetime | None = None) -> Rendered:
    """The issue's largest copy: compiled as for sending, slots filled for the longest reader."""
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        if issue is None:
            raise UserError(f"issue {issue_id} does not exist (see `newsletter issue list`)")
        compiled = compile_issue(build_issue_view(session, settings, issue))
        week = issue.week
        checked = tuple((slug, at) for slug, at in session.execute(
            select(Comparison.slug, Comparison.checked_at).join(IssueItem, IssueItem.comparison_id == Comparison.id)
            .where(IssueItem.issue_id == issue_id).order_by(IssueItem.position)))
    values = {"email": LONGEST_EMAIL, **recipient_links(settings, CHECK_SECRET, LONGEST_ID)}
    if not values["track_token"]:
        values["track_token"] = values["vote_token"]
    return Rendered(issue_id, week, compiled.html.fill(values, lambda v: html.escape(v, quote=True)),
                    compiled.text.fill(values), settings, now or utcnow(), checked)


def run_checks(engine: Engine, settings: Settings, issue_id: int, now: datetime | None = None) -> list[CheckResult]:
    rendered = render_for_checks(engine, settings, issue_id, now)
    return [check(rendered) for check in CHECKS]


def blocking(results: list[CheckResult], ignore: Collection[str] = ()) -> list[CheckResult]:
    """The failing checks an override does not cover."""
    return [result for result in results if result.level == FAIL and result.name not in ignore]


def enforce(engine: Engine, settings: Settings, issue_id: int, now: datetime | None = None,
            ignore: Collection[str] = (), override: str = "--ignore-checks") -> list[CheckResult]:
    """Run every check; raise ChecksFailed naming the failing ones that are not ignored."""
    results = run_checks(engine, settings, issue_id, now)
    failing = blocking(results, ignore)
    if failing:
        raise ChecksFailed(issue_id, failing, override)
    return results


def failing_checks(engine: Engine, settings: Settings, issue_id: int, now: datetime | None = None,
                   ignore: Collection[str] = ()) -> list[CheckResult]:
    """For unattended callers (the scheduler): the failing checks but those in `ignore` (an
    editor's override kept with the schedule); an issue that does not even render fails a
    "render" check instead of raising."""
    try:
        return blocking(run_checks(engine, settings, issue_id, now), ignore)
    except UserError as exc:
        return [CheckResult("render", FAIL, str(exc))]
