"""Postmark: POST /email/batch, up to 500 messages per request, one answer per message.

Per message: ErrorCode 0 is sent (MessageID is the provider id); 406 (inactive
recipient: it bounced hard, complained or was suppressed) is failed with a hard
bounce; codes that describe the account rather than the message (bad token,
maintenance, out of credits, account pending or not allowed to send, rate
limit) are retry; every other code is failed.
"""

from __future__ import annotations

from collections.abc import Sequence

import requests

from newsletter.config import PostmarkSettings
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.mail.message import OutgoingMessage
from newsletter.delivery.transports.http import JSON_HEADERS, HttpTransport, Item, dumps, http_failure, json_body, require_secret
from newsletter.mail.reader import parse_message

BATCH_LIMIT = 500
INACTIVE_RECIPIENT = 406
# Postmark API error codes about the account or the service, not this message.
ACCOUNT_CODES = {10: "bad or missing server token", 100: "maintenance", 405: "not allowed to send",
                 412: "account pending approval", 413: "account may not send", 429: "rate limit exceeded"}


def code_result(code: int, message: str, per_message: bool) -> SendResult:
    error = f"postmark: ErrorCode {code}: {message}".strip()
    if code in ACCOUNT_CODES:
        return SendResult(Outcome.retry, error=error)
    # A request-level 406 would name some address of the batch, not every message in it.
    return SendResult(Outcome.failed, error=error, hard_bounce=per_message and code == INACTIVE_RECIPIENT)


class PostmarkTransport(HttpTransport):
    name = "postmark"
    needs_bytes = False  # JSON fields only (OutgoingMessage.content)
    batch_limit = BATCH_LIMIT

    def __init__(self, settings: PostmarkSettings, session: requests.Session | None = None) -> None:
        self.token = require_secret(settings.token, "mail.postmark.token")
        self.url = f"{settings.base_url or 'https://api.postmarkapp.com'}/email/batch"
        self.message_stream = settings.message_stream
        super().__init__(settings.timeout, session)

    def prepare(self, message: OutgoingMessage) -> dict:
        parsed = parse_message(message)
        payload = {
            "From": parsed.from_header,
            "To": parsed.to_header,
            "Subject": parsed.subject,
            "Headers": [{"Name": name, "Value": value} for name, value in parsed.headers.items()],
            "MessageStream": self.message_stream,
            "Metadata": {"reference": message.reference},
        }
        if parsed.html is not None:
            payload["HtmlBody"] = parsed.html
        if parsed.text is not None:
            payload["TextBody"] = parsed.text
        if parsed.reply_to:
            payload["ReplyTo"] = parsed.reply_to_header
        return payload

    def send_chunk(self, items: Sequence[Item]) -> list[SendResult]:
        reply = self.post(self.url, data=dumps([item.prepared for item in items]),
                          headers={**JSON_HEADERS, "X-Postmark-Server-Token": self.token})
        if isinstance(reply, SendResult):
            return [reply] * len(items)
        body = json_body(reply)
        failure = http_failure(self.name, reply)
        if failure is not None:
            if reply.status_code == 422 and isinstance(body, dict) and isinstance(body.get("ErrorCode"), int):
                failure = code_result(body["ErrorCode"], str(body.get("Message", "")), per_message=False)
            return [failure] * len(items)
        if not isinstance(body, list) or len(body) != len(items):
            # Accepted (2xx) but unreadable: do not send again; no provider ids to record.
            return [SendResult(Outcome.sent, error="postmark: unreadable batch answer")] * len(items)
        results = []
        for answer in body:
            answer = answer if isinstance(answer, dict) else {}
            code = answer.get("ErrorCode")
            if code == 0:
                results.append(SendResult(Outcome.sent, provider_id=answer.get("MessageID") or None))
            else:
                code = code if isinstance(code, int) else -1
                results.append(code_result(code, str(answer.get("Message", "")), per_message=True))
        return results
