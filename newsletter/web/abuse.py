"""Defences of the public forms: visitor-bound form tokens, honeypot, client address, rate limits.

The request throttle is in memory, per process: `newsletter serve` runs one process,
so that is the whole deployment; behind several processes each keeps its own
window (documented in docs/operations.md).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from itsdangerous import BadData

from newsletter.tokens import timestamp_signer

HONEYPOT_FIELD = "website"
HOUR = 3600.0  # the window of every per-hour limit in [web]


class FormTokenError(Exception):
    pass


class NotThisVisitor(FormTokenError):
    """A genuine form token, but issued to another browser: a post driven from somewhere else."""


FORM_SALT = "weekly-verdicts:signup-form"
VISITOR_COOKIE = "wv_visitor"
_VISITOR = re.compile(r"[A-Za-z0-9_-]{24}")


def visitor_id(cookie: str | None) -> str:
    """The browser's random id from its cookie, or a new one (a signed double-submit cookie:
    the form token signs this id, so a token only works together with the cookie it was made for)."""
    if cookie and _VISITOR.fullmatch(cookie):
        return cookie
    return secrets.token_urlsafe(18)


def visitor_cookie(visitor: str, max_age: int, https: bool, embed: bool) -> str:
    """Set-Cookie value: HttpOnly; Lax on our own pages; in a third-party iframe (/embed) the
    browser only sends SameSite=None;Secure cookies, partitioned per embedding site (CHIPS)."""
    parts = [f"{VISITOR_COOKIE}={visitor}", "Path=/", f"Max-Age={max_age}", "HttpOnly"]
    if embed and https:
        return "; ".join([*parts, "Secure", "SameSite=None", "Partitioned"])
    return "; ".join([*parts, *(["Secure"] if https else []), "SameSite=Lax"])


def issue_form_token(secret: str, visitor: str) -> str:
    """Signed and timestamped when the form is shown, bound to the visitor's cookie."""
    return timestamp_signer(secret, FORM_SALT).sign(f"signup:{visitor}".encode()).decode()


def check_form_token(secret: str, token: str, visitor: str | None, min_seconds: float, max_seconds: float,
                     now: float | None = None) -> None:
    """Reject forged tokens, tokens of another browser, bots that post faster than a person
    types, and stale forms."""
    try:
        value, signed_at = timestamp_signer(secret, FORM_SALT).unsign(token, return_timestamp=True)
    except BadData:
        raise FormTokenError("the form was not valid; please reload the page and try again") from None
    if not value.startswith(b"signup:"):
        raise FormTokenError("the form was not valid; please reload the page and try again")
    if not visitor or not hmac.compare_digest(value, f"signup:{visitor}".encode()):
        raise NotThisVisitor("this form was not loaded in this browser")
    age = (now or time.time()) - signed_at.timestamp()
    if age < min_seconds:
        raise FormTokenError("that was quicker than a person can type; please try again")
    if age > max_seconds:
        raise FormTokenError("the form has expired; please reload the page and try again")


def network_of(ip: str) -> str:
    """The /24 of an IPv4 address or the /64 of an IPv6 address."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def client_address(peer: str | None, forwarded_for: list[str], trusted_hops: int) -> str:
    """The client's IP as the outermost of `trusted_hops` reverse proxies saw it.

    Each proxy appends the address it received the request from, so the right-most entries are
    the only ones a trusted proxy wrote; anything to their left is whatever the client sent and
    can be forged. With N trusted hops the client is the N-th entry from the right. A missing
    entry or one that is not an IP address falls back to the socket peer (never to client text).
    """
    fallback = peer or "unknown"
    if trusted_hops <= 0:
        return fallback
    entries = [entry.strip() for header in forwarded_for for entry in header.split(",")]
    if len(entries) < trusted_hops:
        return fallback
    candidate = entries[-trusted_hops]
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return fallback


@dataclass
class ThrottleLimit:
    """At most `limit` attempts per `window` seconds for one key (an IP, a network, an address)."""

    key: str
    limit: int
    window: float


class RequestThrottle:
    """Sliding-window counters for web requests; `hit` records an attempt or says how long to wait.

    Not the mail-sending limit (delivery's SendRateLimiter, shared through the database)."""

    def __init__(self, clock=time.monotonic) -> None:
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def hit(self, limits: list[ThrottleLimit]) -> float | None:
        """Record one attempt against every limit, or return seconds to wait (recording nothing)."""
        now = self._clock()
        with self._lock:
            waits = []
            for item in limits:
                events = self._events.setdefault(item.key, deque())
                while events and events[0] <= now - item.window:
                    events.popleft()
                if len(events) >= item.limit:
                    waits.append(events[0] + item.window - now)
            if waits:
                return max(1.0, max(waits))
            for item in limits:
                self._events[item.key].append(now)
            if len(self._events) > 100_000:  # bound memory under a flood of distinct keys
                self._events = {k: v for k, v in self._events.items() if v}
            return None

    def refund(self, keys: list[str]) -> None:
        """Take back one attempt of each key (the newest: attempts are counted, not told apart):
        for limits on failures (sign-ins), where an attempt that succeeded must not count
        towards locking its owner out."""
        with self._lock:
            for key in keys:
                events = self._events.get(key)
                if events:
                    events.pop()
