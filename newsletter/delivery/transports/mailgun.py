"""Mailgun: POST /v3/{domain}/messages.mime, one request per message.

The message goes as it is (the MIME bytes as the `message` file of a multipart
form), so Mailgun sends exactly the headers the pipeline wrote. `to` is the
envelope recipient; `v:reference` comes back in Mailgun's events. The answer
is {"id": "<...>", "message": "Queued. Thank you."}; the id is stored without
its angle brackets, as Mailgun's events show it.
"""

from __future__ import annotations

from collections.abc import Sequence

import requests

from newsletter.config import MailgunSettings
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.mail.message import OutgoingMessage
from newsletter.delivery.transports.http import (
    HttpTransport,
    Item,
    http_failure,
    json_body,
    require_secret,
)
from newsletter.errors import ConfigError


class MailgunTransport(HttpTransport):
    name = "mailgun"
    batch_limit = 1

    def __init__(self, settings: MailgunSettings, session: requests.Session | None = None) -> None:
        self.api_key = require_secret(settings.api_key, "mail.mailgun.api_key")
        if not settings.domain:
            raise ConfigError("config error: mail.mailgun.domain is not set (the sending domain); set it in "
                              "[mail.mailgun] or by NEWSLETTER_MAIL__MAILGUN__DOMAIN")
        self.url = f"{settings.base_url or 'https://api.mailgun.net'}/v3/{settings.domain}/messages.mime"
        super().__init__(settings.timeout, session)

    def prepare(self, message: OutgoingMessage) -> None:
        return None  # the bytes go as they are

    def send_chunk(self, items: Sequence[Item]) -> list[SendResult]:
        (item,) = items
        message = item.message
        reply = self.post(
            self.url,
            auth=("api", self.api_key),
            headers={"Accept": "application/json"},
            data={"to": message.recipient, "v:reference": message.reference},
            files={"message": ("message.mime", message.data, "message/rfc822")},
        )
        if isinstance(reply, SendResult):
            return [reply]
        failure = http_failure(self.name, reply)
        if failure is not None:
            return [failure]
        body = json_body(reply)
        provider_id = str(body.get("id") or "").strip().strip("<>") if isinstance(body, dict) else ""
        return [SendResult(Outcome.sent, provider_id=provider_id or None)]
