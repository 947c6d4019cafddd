"""SendGrid: POST /v3/mail/send, one request per message (each body is personal: it carries
the reader's own unsubscribe links). 202 is sent; the X-Message-Id answer header is the
provider id. The delivery reference travels as custom_args, so event webhooks can name it.
"""

from __future__ import annotations

from collections.abc import Sequence

import requests

from newsletter.config import SendgridSettings
from newsletter.delivery.transports.base import OutgoingMessage, Outcome, SendResult
from newsletter.delivery.transports.http import (JSON_HEADERS, HttpTransport, Item, dumps, http_failure,
                                                 parse_message, require_secret)


def _address(name: str, address: str) -> dict[str, str]:
    return {"email": address, "name": name} if name else {"email": address}


class SendgridTransport(HttpTransport):
    name = "sendgrid"
    batch_limit = 1

    def __init__(self, settings: SendgridSettings, session: requests.Session | None = None) -> None:
        self.api_key = require_secret(settings.api_key, "mail.sendgrid.api_key")
        self.url = f"{settings.base_url or 'https://api.sendgrid.com'}/v3/mail/send"
        super().__init__(settings.timeout, session)

    def prepare(self, message: OutgoingMessage) -> bytes:
        parsed = parse_message(message)
        content = []  # SendGrid wants text/plain first, then text/html
        if parsed.text is not None:
            content.append({"type": "text/plain", "value": parsed.text})
        if parsed.html is not None:
            content.append({"type": "text/html", "value": parsed.html})
        payload = {
            "personalizations": [{"to": [_address(parsed.recipient_name, parsed.recipient)]}],
            "from": _address(parsed.sender_name, parsed.sender),
            "subject": parsed.subject,
            "content": content,
            "headers": parsed.headers,
            "custom_args": {"reference": message.reference},
        }
        if parsed.reply_to:
            if len(parsed.reply_to) == 1:
                payload["reply_to"] = _address(*parsed.reply_to[0])
            else:
                payload["reply_to_list"] = [_address(name, address) for name, address in parsed.reply_to]
        return dumps(payload)

    def send_chunk(self, items: Sequence[Item]) -> list[SendResult]:
        (item,) = items
        reply = self.post(self.url, data=item.prepared,
                          headers={**JSON_HEADERS, "Authorization": f"Bearer {self.api_key}"})
        if isinstance(reply, SendResult):
            return [reply]
        failure = http_failure(self.name, reply)
        if failure is not None:
            return [failure]
        return [SendResult(Outcome.sent, provider_id=reply.headers.get("X-Message-Id") or None)]
