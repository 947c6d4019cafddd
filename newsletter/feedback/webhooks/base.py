"""What every provider webhook shares: the request it reads, what it answers (Verified, or the
exceptions Rejected and NotConfigured), the provider interface the route calls, and the parsing
limits, timestamps and batch handling every provider needs.

Why an interface: the route (newsletter/web/webhooks.py) knows nothing about any provider; each
provider object is built once with what it needs (its settings section; for SES the certificate
fetcher, trust roots and subscription confirmer), so tests swap those at construction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from newsletter.feedback.events import NormalizedEvent

NONCE_KEEP_SECONDS = 86400.0  # single-use tokens are remembered at least a day (webhooks/nonces.py)


@dataclass(frozen=True)
class WebhookRequest:
    headers: Mapping[str, str]  # case-insensitive (Starlette's Headers)
    body: bytes
    now: datetime


@dataclass
class Verified:
    """An authentic request: its events, the event types it carried that we do not act on, and
    for Mailgun the single-use token (`nonce`) that must not have been seen before."""

    events: list[NormalizedEvent] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    nonce: str | None = None
    nonce_event: str = ""
    nonce_keep_seconds: float = NONCE_KEEP_SECONDS  # how long the nonce must be remembered
    note: str = ""


class Rejected(Exception):
    """The request is not authentic (401), not allowed (403) or unreadable (400): nothing is stored."""

    def __init__(self, reason: str, status: int = 401, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status, self.headers = reason, status, headers or {}


class NotConfigured(Exception):
    """The provider's secret is missing or unusable: answered 503, so the provider retries later."""


MAX_DEPTH = 32  # real payloads nest 6 levels at most; deeper is an attack on the parser or on us


def load_json(body: bytes | str):
    """Parse a webhook body, or Rejected (400) when it is not JSON or nests deeper than
    MAX_DEPTH. Invalid UTF-8 is replaced, not refused: a remote server's bounce text with a
    broken byte must not lose the provider's whole batch (the signature covers the raw bytes)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        payload = json.loads(text)
    except RecursionError:
        raise Rejected(f"the body nests deeper than {MAX_DEPTH} levels", 400) from None
    except ValueError:  # also a number with more digits than Python converts
        raise Rejected("the body is not JSON", 400) from None
    if _depth_exceeds(payload, MAX_DEPTH):
        raise Rejected(f"the body nests deeper than {MAX_DEPTH} levels", 400)
    return payload


def _depth_exceeds(value: object, limit: int) -> bool:
    """Iterative (no recursion to exhaust): whether containers nest deeper than `limit`."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


class WebhookProvider(Protocol):
    """One provider's webhook: `name` is the path segment (/webhooks/<name>); `configured()` is
    False while its secret is missing (the route answers 503); `verify_and_parse` checks the
    request's authenticity and reads its events, or raises Rejected (nothing is stored) or
    NotConfigured (a secret that is set but unusable)."""

    name: str

    def configured(self) -> bool: ...

    def verify_and_parse(self, request: WebhookRequest) -> Verified: ...


def parse_time(value: object) -> datetime | None:
    """Unix seconds (int, float or digits) or ISO 8601; None when absent or unreadable."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if re.fullmatch(r"\d+(\.\d+)?", text):
                return datetime.fromtimestamp(float(text), UTC)
            parsed = datetime.fromisoformat(text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def check_fresh(timestamp: str | None, now: datetime, max_age: float) -> None:
    """A signed unix timestamp must be within `max_age` seconds of now, either way (clock skew)."""
    if not timestamp or not re.fullmatch(r"\d{1,12}", timestamp.strip()):
        raise Rejected("missing or malformed timestamp")
    if abs(now.timestamp() - int(timestamp)) > max_age:
        raise Rejected("timestamp outside the replay window")


def header(request: WebhookRequest, name: str) -> str:
    return (request.headers.get(name) or "").strip()


def collect_records(payload: object, parse: Callable[[dict], "NormalizedEvent | None"],
                    label: Callable[[dict], str], what: str) -> Verified:
    """For providers that post a JSON array of event objects (or one object): parse each one,
    or note its type as ignored. One unreadable record (not an object, no id, a field of the
    wrong type) is noted as ignored and never loses the rest of the batch."""
    result = Verified()
    for number, record in enumerate(payload if isinstance(payload, list) else [payload], start=1):
        try:
            if not isinstance(record, dict):
                raise Rejected(f"{what} is not a JSON object", 400)
            event = parse(record)
        except (Rejected, ValueError, TypeError, KeyError, AttributeError) as exc:
            result.ignored.append(f"unreadable {what} #{number} ({str(exc)[:80]})")
            continue
        if event is None:
            result.ignored.append(str(label(record))[:80])
        else:
            result.events.append(event)
    return result
