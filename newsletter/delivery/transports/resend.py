"""Resend: POST /emails/batch, up to 100 messages per request.

Idempotency-Key: a hash of the chunk's delivery references, so the same chunk
sent again (an in-call retry after a 5xx, whose body is byte-identical) is not
sent twice. Resend keeps keys for 24 hours. A later attempt of the same
deliveries carries new link tokens, hence a different body: Resend answers 409
invalid_idempotent_request, which here means the chunk was taken before, and is
recorded as failed with that explanation rather than risking a second copy.

x-batch-validation: permissive, so one invalid message fails alone: the answer is
{"data": [{"id"}...], "errors": [{"index", "message"}...]}, where data lists the
accepted messages in request order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import requests

from newsletter.config import ResendSettings
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.mail.message import OutgoingMessage
from newsletter.delivery.transports.http import JSON_HEADERS, HttpTransport, Item, describe, dumps, http_failure, json_body, require_secret
from newsletter.mail.reader import parse_message

BATCH_LIMIT = 100
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def idempotency_key(references: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(references).encode("utf-8")).hexdigest()
    return f"weekly-verdicts/{digest}"


class ResendTransport(HttpTransport):
    name = "resend"
    needs_bytes = False  # JSON fields only (OutgoingMessage.content)
    batch_limit = BATCH_LIMIT

    def __init__(self, settings: ResendSettings, session: requests.Session | None = None) -> None:
        self.api_key = require_secret(settings.api_key, "mail.resend.api_key")
        self.url = f"{settings.base_url or 'https://api.resend.com'}/emails/batch"
        super().__init__(settings.timeout, session)

    def prepare(self, message: OutgoingMessage) -> dict:
        parsed = parse_message(message)
        payload = {
            "from": parsed.from_header,
            "to": [parsed.to_header],
            "subject": parsed.subject,
            "headers": parsed.headers,
            "tags": [{"name": "reference", "value": _TAG_UNSAFE.sub("_", message.reference)[:256]}],
        }
        if parsed.html is not None:
            payload["html"] = parsed.html
        if parsed.text is not None:
            payload["text"] = parsed.text
        if parsed.reply_to:
            payload["reply_to"] = [parsed.reply_to_header]
        return payload

    def send_chunk(self, items: Sequence[Item]) -> list[SendResult]:
        headers = {
            **JSON_HEADERS,
            "Authorization": f"Bearer {self.api_key}",
            "Idempotency-Key": idempotency_key([item.message.reference for item in items]),
            "x-batch-validation": "permissive",
        }
        reply = self.post(self.url, data=dumps([item.prepared for item in items]), headers=headers)
        if isinstance(reply, SendResult):
            return [reply] * len(items)
        body = json_body(reply)
        if reply.status_code == 409:
            name = body.get("name") if isinstance(body, dict) else None
            if name == "concurrent_idempotent_requests":  # the first request is still running
                return [SendResult(Outcome.retry, error=describe(self.name, reply))] * len(items)
            if name == "invalid_idempotent_request":
                error = (describe(self.name, reply) + " (these deliveries were submitted to Resend before, "
                         "within 24 hours; not sent again: check the Resend log)")
                return [SendResult(Outcome.failed, error=error)] * len(items)
        failure = http_failure(self.name, reply)
        if failure is not None:
            return [failure] * len(items)
        return self._read_batch(body, len(items))

    def _read_batch(self, body: object, count: int) -> list[SendResult]:
        data = body.get("data") if isinstance(body, dict) else None
        errors = body.get("errors") if isinstance(body, dict) else None
        results: list[SendResult | None] = [None] * count
        for error in errors if isinstance(errors, list) else []:
            index = error.get("index") if isinstance(error, dict) else None
            if isinstance(index, int) and 0 <= index < count:
                results[index] = SendResult(Outcome.failed, error=f"resend: {error.get('message', 'rejected')}")
        accepted = [i for i, r in enumerate(results) if r is None]
        ids = [entry.get("id") if isinstance(entry, dict) else None for entry in data] \
            if isinstance(data, list) else []
        if len(ids) != len(accepted):
            ids = [None] * len(accepted)  # accepted, but the ids cannot be matched to messages
        for index, provider_id in zip(accepted, ids):
            results[index] = SendResult(Outcome.sent, provider_id=provider_id or None)
        return [r for r in results if r is not None]
