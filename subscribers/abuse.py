"""Defences of the public signup form: form tokens, honeypot, rate limits.

The rate limiter is in memory, per process: `newsletter serve` runs one process,
so that is the whole deployment; behind several processes each keeps its own
window (documented in docs/operations.md).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from dataclasses import dataclass

from itsdangerous import BadData

from subscribers.tokens import timestamp_signer

HONEYPOT_FIELD = "website"


class FormTokenError(Exception):
    pass


FORM_SALT = "weekly-verdicts:signup-form"


def issue_form_token(secret: str) -> str:
    """Signed and timestamped when the form is shown."""
    return timestamp_signer(secret, FORM_SALT).sign(b"signup").decode()


def check_form_token(secret: str, token: str, min_seconds: float, max_seconds: float,
                     now: float | None = None) -> None:
    """Reject forged tokens, bots that post faster than a person types, and stale forms."""
    try:
        value, signed_at = timestamp_signer(secret, FORM_SALT).unsign(token, return_timestamp=True)
    except BadData:
        raise FormTokenError("the form was not valid; please reload the page and try again") from None
    if value != b"signup":
        raise FormTokenError("the form was not valid; please reload the page and try again")
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


@dataclass
class Limit:
    key: str
    limit: int
    window: float


class RateLimiter:
    """Sliding-window counters; `hit` records an attempt or says how long to wait."""

    def __init__(self, clock=time.monotonic) -> None:
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def hit(self, limits: list[Limit]) -> float | None:
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
