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
- `parse_message()`: the fields the JSON APIs want: the message's `content` when
  its builder attached it (every message the pipeline makes), else its RFC 5322
  bytes read once (messages from elsewhere: notices, tests). Reading bytes, the
  flat shape (one text part, or multipart/alternative of leaf parts) takes a
  fast path: only the header blocks go through the stdlib parser, the bodies are
  cut at the boundary and decoded with binascii (the feedparser's line-by-line
  walk cost ~5 ms per 80 KB issue, more than the request).
  Anything else (nesting, a part without headers, an odd boundary line) goes
  through the full stdlib parser, so the result is the same either way.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import requests
from pydantic import SecretStr

from newsletter.config import ENV_PREFIX
from newsletter.delivery.transports.base import (
    TIME_BUDGET_SECONDS,
    Body,
    MessageContent,
    Outcome,
    OutgoingMessage,
    PlainBody,
    SendResult,
    not_tried,
)
from newsletter.errors import ConfigError

log = logging.getLogger(__name__)

USER_AGENT = "weekly-verdicts-newsletter"

# Headers the pipeline writes that a JSON API must carry over (the JSON APIs build
# their own MIME message; From/To/Subject/Date are fields or set by the provider).
# The delivery header's name is spelled here rather than imported from
# newsletter.issues: a transport knows nothing of issues.
PASS_THROUGH_HEADERS = (
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Message-ID",
    "X-Weekly-Verdicts-Delivery",
)

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE = re.compile("[\udc80-\udcff]")


def require_secret(value: SecretStr, key: str) -> str:
    """The secret's value, or a ConfigError naming the environment variable to set.
    `key` is the dotted settings path, e.g. "mail.postmark.token"."""
    secret = value.get_secret_value().strip()
    if not secret:
        env_name = ENV_PREFIX + "__".join(part.upper() for part in key.split("."))
        raise ConfigError(f"config error: {key} is not set; export {env_name} "
                          "(API keys are read from the environment only)")
    return secret


# --- the message -------------------------------------------------------------------------------


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words -> text (an undecodable word is kept as written)."""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def _raw_headers(message: Message) -> dict[str, str]:
    """Lower-case name -> the first such header's value as written, unfolded. Raw 8-bit bytes
    (kept by the parser as surrogates) are read as UTF-8."""
    found: dict[str, str] = {}
    for name, value in message.raw_items():
        key = name.lower()
        if key in found:
            continue
        text = str(value)
        if _SURROGATE.search(text):
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        found[key] = _FOLD.sub("", text).strip()
    return found


def _addresses(raw: dict[str, str], name: str) -> list[tuple[str, str]]:
    value = raw.get(name.lower())
    if not value:
        return []
    # Split the header as written (encoded words intact), then decode each display name.
    return [(_decode_words(display), address) for display, address in getaddresses([value]) if address]


def _bodies(message: Message) -> dict[str, str]:
    """The first inline text/plain and text/html parts, decoded, with LF line ends."""
    found: dict[str, str] = {}
    for part in message.walk():
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html") or kind in found or part.get_filename():
            continue
        if (part.get("Content-Disposition") or "").strip().lower().startswith("attachment"):
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, "replace")
        except LookupError:
            text = payload.decode("utf-8", "replace")
        found[kind] = text.replace("\r\n", "\n")
    return found


_HEADERS_ONLY = BytesParser(policy=policy.compat32)  # compat32: the registry policy is ~10x slower
_TEXT_KINDS = ("text/plain", "text/html")


def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    end = data.find(b"\r\n\r\n")
    return None if end < 0 else (data[:end + 2], data[end + 4:])


def _decode_part(part: Message, payload: bytes) -> str | None:
    encoding = (part.get("Content-Transfer-Encoding") or "7bit").strip().lower()
    if encoding == "quoted-printable":
        payload = binascii.a2b_qp(payload)
    elif encoding == "base64":
        try:
            payload = binascii.a2b_base64(payload)
        except binascii.Error:
            return None
    elif encoding not in ("7bit", "8bit", "binary"):
        return None
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _fast_parse(data: bytes) -> tuple[Message, dict[str, str]] | None:
    """(the top-level headers, the bodies as `_bodies` finds them) for a flat message, parsing only
    header blocks; None for any other shape (the caller then uses the full parser)."""
    split = _split_head(data)
    if split is None:
        return None
    head, body = split
    top = _HEADERS_ONLY.parsebytes(head, headersonly=True)
    kind = top.get_content_type()
    if kind in _TEXT_KINDS:
        parts = [(top, body)]
    elif kind == "multipart/alternative":
        boundary = top.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            return None
        pieces = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("ascii", "replace"))
        if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
            return None
        parts = []
        for piece in pieces[1:-1]:
            line_end = piece.find(b"\r\n")
            if line_end < 0 or piece[:line_end].strip():  # not a delimiter line after all
                return None
            inner = _split_head(piece[line_end + 2:])
            if inner is None or inner[0].startswith(b"\r\n"):
                return None
            headers = _HEADERS_ONLY.parsebytes(inner[0], headersonly=True)
            if headers.get_content_maintype() == "multipart":
                return None
            parts.append((headers, inner[1]))
    else:
        return None
    found: dict[str, str] = {}
    for part, payload in parts:
        kind = part.get_content_type()
        if kind not in _TEXT_KINDS or kind in found or part.get_filename():
            continue
        if (part.get("Content-Disposition") or "").strip().lower().startswith("attachment"):
            continue
        text = _decode_part(part, payload)
        if text is None:
            return None
        found[kind] = text
    return top, found


def parse_message(message: OutgoingMessage, fast: bool = True, use_content: bool = True) -> MessageContent:
    """The message's fields: its `content` when the builder attached it, else read from its bytes."""
    if use_content and message.content is not None:
        return message.content
    quick = _fast_parse(message.data) if fast else None
    if quick is not None:
        parsed, bodies = quick
    else:
        parsed = BytesParser(policy=policy.compat32).parsebytes(message.data)
        bodies = _bodies(parsed)
    raw = _raw_headers(parsed)
    senders = _addresses(raw, "From")
    if not senders:
        raise ValueError("the message has no From address")
    sender_name, sender = senders[0]
    recipient_name = next((name for name, address in _addresses(raw, "To")
                           if address.lower() == message.recipient.lower()), "")
    # As written: encoded words stay encoded, the provider copies the value into its message.
    headers = {name: raw[name.lower()] for name in PASS_THROUGH_HEADERS if name.lower() in raw}
    if not bodies:
        raise ValueError("the message has neither a text/plain nor a text/html part")
    text, html = bodies.get("text/plain"), bodies.get("text/html")
    return MessageContent(
        sender_name=sender_name,
        sender=sender,
        recipient_name=recipient_name,
        recipient=message.recipient,
        subject=_decode_words(raw.get("subject", "")),
        text=None if text is None else PlainBody(text),
        html=None if html is None else PlainBody(html),
        reply_to=tuple(_addresses(raw, "Reply-To")),
        headers=headers,
    )


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

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
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
