"""Amazon SES (API v2) SendEmail: POST /v2/email/outbound-emails, one request per message.

The message goes raw (base64 in Content.Raw.Data), so SES sends the headers the
pipeline wrote. Requests are signed with AWS Signature Version 4 (service "ses")
by requests-aws4auth, a small maintained signer for requests (botocore would
bring ~21 MB of service models for this one signature). The answer is
{"MessageId": ...}. Errors name their type in the x-amzn-ErrorType header;
types that describe the account (sending paused, quota, unverified MAIL FROM
domain, missing configuration set) are retry, MessageRejected and
BadRequestException are failed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

import requests
from requests_aws4auth import AWS4Auth

from newsletter.config import SesSettings
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.mail.message import OutgoingMessage
from newsletter.delivery.transports.http import (
    JSON_HEADERS,
    HttpTransport,
    Item,
    dumps,
    http_failure,
    json_body,
    require_secret,
)

ACCOUNT_ERRORS = {
    "SendingPausedException",
    "AccountSuspendedException",
    "LimitExceededException",
    "MailFromDomainNotVerifiedException",
    "NotFoundException",  # the configuration set does not exist
    "TooManyRequestsException",
}
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def error_type(response: requests.Response) -> str:
    """`MessageRejected` from `x-amzn-ErrorType: MessageRejected:http://...` or the body."""
    value = response.headers.get("x-amzn-ErrorType", "")
    if not value:
        body = json_body(response)
        if isinstance(body, dict):
            value = str(body.get("__type") or body.get("code") or body.get("Code") or "")
    return value.split(":", 1)[0].rsplit("#", 1)[-1].strip()


class SesTransport(HttpTransport):
    name = "ses"
    batch_limit = 1

    def __init__(self, settings: SesSettings, session: requests.Session | None = None) -> None:
        access_key_id = require_secret(settings.access_key_id, "mail.ses.access_key_id")
        secret = require_secret(settings.secret_access_key, "mail.ses.secret_access_key")
        self.auth = AWS4Auth(access_key_id, secret, settings.region, "ses")
        base = settings.base_url or f"https://email.{settings.region}.amazonaws.com"
        self.url = f"{base}/v2/email/outbound-emails"
        self.configuration_set = settings.configuration_set
        super().__init__(settings.timeout, session)

    def prepare(self, message: OutgoingMessage) -> bytes:
        payload = {
            "FromEmailAddress": message.envelope_from,
            "Destination": {"ToAddresses": [message.recipient]},
            "Content": {"Raw": {"Data": base64.b64encode(message.data).decode("ascii")}},
            "EmailTags": [{"Name": "reference", "Value": _TAG_UNSAFE.sub("_", message.reference)[:256]}],
        }
        if self.configuration_set:
            payload["ConfigurationSetName"] = self.configuration_set
        return dumps(payload)

    def send_chunk(self, items: Sequence[Item]) -> list[SendResult]:
        (item,) = items
        reply = self.post(self.url, data=item.prepared, headers=JSON_HEADERS, auth=self.auth)
        if isinstance(reply, SendResult):
            return [reply]
        failure = http_failure(self.name, reply)
        if failure is not None:
            kind = error_type(reply)
            error = f"{failure.error} ({kind})" if kind else failure.error
            if failure.outcome == Outcome.failed and kind in ACCOUNT_ERRORS:
                return [SendResult(Outcome.retry, error=error, retry_after=failure.retry_after)]
            return [SendResult(failure.outcome, error=error, retry_after=failure.retry_after)]
        body = json_body(reply)
        provider_id = body.get("MessageId") if isinstance(body, dict) else None
        return [SendResult(Outcome.sent, provider_id=provider_id or None)]
