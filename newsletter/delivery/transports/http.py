"""What the HTTP provider transports (postmark, sendgrid, mailgun, resend, ses) share.

- `HttpTransport`: a requests.Session with timeouts; `send()` prepares every
  message, cuts the batch into requests of at most `batch_limit` messages and
  hands each to the provider's `send_chunk()`. A chunk that comes back all
  `retry` (429, 5xx, network, account-level trouble) ends the call: the rest of
  the batch is answered `retry` without being tried, so an unreachable or
  throttling provider costs one request, not one per message. A time budget
  bounds the call well below the outbox lease.
- `dumps()`: compact JSON in which each body is spliced in as its ready JSON literal.
- `post()`: one POST with a short, bounded in-call backoff for 5xx answers and
  connection failures (never for read timeouts: the provider may have accepted).
- `http_failure()`: HTTP status -> outcome. 2xx sent; 429 retry honouring
  Retry-After (seconds or an HTTP date); 408, 5xx and network errors retry;
  401/403 retry (a rejected key or unverified sender is an account problem that
  an operator fixes: failing the deliveries would lose the whole list); other
  4xx failed.
- `parse_message()` (newsletter.mail.reader): the fields the JSON APIs want.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from pydantic import SecretStr

from newsletter.config import ENV_PREFIX
from newsletter.delivery.transports.base import TIME_BUDGET_SECONDS, Halt, Outcome, SendResult, halted, not_tried
from newsletter.mail.message import Body, OutgoingMessage
from newsletter.errors import ConfigError

log = logging.getLogger(__name__)

USER_AGENT = "weekly-verdicts-newsletter"


def require_secret(value: SecretStr, key: str) -> str:
    """The secret's value, or a ConfigError naming the environment variable to set.
    `key` is the dotted settings path, e.g. "mail.postmark.token"."""
    secret = value.get_secret_value().strip()
    if not secret:
        env_name = ENV_PREFIX + "__".join(part.upper() for part in key.split("."))
        raise ConfigError(f"config error: {key} is not set; export {env_name} "
                          "(API keys are read from the environment only)")
    return secret


# --- HTTP answers ------------------------------------------------------------------------------


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After (RFC 9110): delay-seconds or an HTTP date. None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def json_body(response: requests.Response) -> Any:
    """The decoded JSON body, or None when there is none or it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def describe(provider: str, response: requests.Response) -> str:
    """`provider: HTTP 422: <the provider's message>`, short enough for last_error."""
    body = json_body(response)
    detail = ""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            detail = str(errors[0].get("message", ""))
        detail = detail or str(body.get("message") or body.get("Message") or "")
    if not detail:
        detail = response.text.strip().replace("\n", " ")
    reason = f"HTTP {response.status_code}"
    return f"{provider}: {reason}: {detail[:300]}" if detail else f"{provider}: {reason}"


def http_failure(provider: str, response: requests.Response) -> SendResult | None:
    """None for a 2xx answer, else the result every message of the request gets."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    error = describe(provider, response)
    if status == 429:
        return SendResult(Outcome.retry, error=error,
                          retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    if status in (401, 403):
        return SendResult(Outcome.retry, error=error + " (check the API key and the sender's verification)")
    if status == 408 or status >= 500:
        return SendResult(Outcome.retry, error=error)
    return SendResult(Outcome.failed, error=error)


# --- the transport base -------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One message of a chunk with what its provider prepared from it."""

    message: OutgoingMessage
    prepared: Any


class HttpTransport:
    """Subclasses set `name`, `batch_limit`, and implement `prepare` and `send_chunk`."""

    name = "http"
    needs_bytes = True  # the raw-MIME APIs (Mailgun, SES); the JSON ones set False
    halts = True  # `halt` is asked before each request after the first
    batch_limit = 1  # messages per request
    retry_delays: tuple[float, ...] = (0.5, 1.5)  # in-call backoff before a 5xx/connection retry
    time_budget = TIME_BUDGET_SECONDS

    def __init__(self, timeout: float, session: requests.Session | None = None) -> None:
        self.timeout = (min(10.0, timeout), timeout)  # (connect, read)
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        if self._owns_session:
            self.session.headers["User-Agent"] = USER_AGENT

    # -- what a provider implements

    def prepare(self, message: OutgoingMessage) -> Any:
        """Per message, before any request; an exception fails only this message."""
        return None

    def send_chunk(self, items: Sequence[Item]) -> list[SendResult]:
        """One request for up to `batch_limit` items: one result per item, in order."""
        raise NotImplementedError

    # -- shared mechanics

    def post(self, url: str, **kwargs: Any) -> requests.Response | SendResult:
        """POST with the in-call backoff. Returns the last response (any status), or a retry
        result when no answer came."""
        delays = list(self.retry_delays)
        while True:
            try:
                response = self.session.post(url, timeout=self.timeout, **kwargs)
            except requests.exceptions.ReadTimeout as exc:
                # The request may have been accepted: no resend within this call.
                return SendResult(Outcome.retry, error=f"{self.name}: no answer in time: {exc}")
            except requests.RequestException as exc:
                if not delays:
                    return SendResult(Outcome.retry, error=f"{self.name}: connection: {exc}")
            else:
                if response.status_code < 500 or not delays:
                    return response
                log.info("%s answered %s; trying again", self.name, response.status_code)
            time.sleep(delays.pop(0))

    def send(self, messages: Sequence[OutgoingMessage], halt: Halt | None = None) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        ready: list[tuple[int, Item]] = []
        for index, message in enumerate(messages):
            try:
                ready.append((index, Item(message, self.prepare(message))))
            except Exception as exc:  # a message we cannot read fails alone, never the batch
                results[index] = SendResult(Outcome.failed, error=f"{self.name}: unusable message: {exc}")
        deadline = time.monotonic() + self.time_budget
        stop: SendResult | None = None
        for start in range(0, len(ready), self.batch_limit):
            chunk = ready[start:start + self.batch_limit]
            if stop is None and time.monotonic() > deadline:
                stop = not_tried(self.name)
            if stop is None and start and halt is not None and halt():
                stop = halted(self.name)
            if stop is not None:
                chunk_results = [stop] * len(chunk)
            else:
                chunk_results = self.send_chunk([item for _, item in chunk])
                if len(chunk_results) != len(chunk):  # a provider bug: never hand back a short list
                    raise RuntimeError(f"{self.name}: {len(chunk_results)} results for {len(chunk)} messages")
                stop = self.stop_after(chunk_results)
            for (index, _), result in zip(chunk, chunk_results):
                results[index] = result
        return [r for r in results if r is not None]

    def stop_after(self, results: Sequence[SendResult]) -> SendResult | None:
        """After a request whose every message came back retry (throttled, provider down, account
        trouble): the answer for every message not tried yet in this call. None: carry on."""
        if not results or any(r.outcome != Outcome.retry for r in results):
            return None
        first = results[0]
        return SendResult(Outcome.retry, error=f"{self.name}: not tried after: {first.error}",
                          retry_after=first.retry_after)

    def close(self) -> None:
        if self._owns_session:
            self.session.close()


_RAW = "\x00wv-json-" + secrets.token_hex(8) + "\x00"  # stands in for a Body while encoding
_RAW_ENCODED = json.dumps(_RAW).encode("ascii")


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON (the same bytes on an in-call retry, so idempotency keys hold). A `Body`
    anywhere in `payload` is written as its ready JSON literal: the encoder sees a marker string in
    its place, and the literals' pieces go where the markers landed, in the same order, joined
    once (a batch of 500 issues is 40 MB: every extra copy shows)."""
    bodies: list[Body] = []

    def raw(value: Any) -> str:
        if callable(getattr(type(value), "json_pieces", None)):  # a Body (checked on the class: an
            bodies.append(value)  # isinstance against the Protocol would evaluate `json`, 80 KB)
            return _RAW
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=raw).encode("utf-8")
    if not bodies:
        return encoded
    pieces = encoded.split(_RAW_ENCODED)
    if len(pieces) != len(bodies) + 1:  # a marker inside a string value: impossible by the nonce
        raise ValueError("JSON splice markers do not match the bodies")
    out = [pieces[0]]
    for body, piece in zip(bodies, pieces[1:]):
        out += body.json_pieces()
        out.append(piece)
    return b"".join(out)


JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
