"""SendGrid: POST /v3/mail/send. 202 is sent; the X-Message-Id answer header is the provider id.
The delivery reference travels as custom_args, so event webhooks can name it.

Batching: one request carries up to 1,000 personalizations (SendGrid's limit). Messages made
from the same template (an issue's readers) differ only in their slots (address, links, tokens),
so they go as one request: the content once, with a substitution tag where each slot was, and
per reader a personalization with `to`, `substitutions` (the reader's values, escaped for the part
they go in), `headers` (List-Unsubscribe, Message-ID, …) and `custom_args`. A thousand issues
cost one 80 KB body instead of 80 MB. The answer is one 202 for the whole request, so every
reader of it is sent with the same X-Message-Id (webhooks match by the reference first).

SendGrid refuses a whole request for one bad personalization (400). Such a refusal is not
pinned on all thousand readers: the batch is sent again one request per reader, so only the bad
one fails. Messages without a template behind them (editors' notices) go one request each.
"""

from __future__ import annotations

import itertools
import secrets
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import requests

from newsletter.config import SendgridSettings
from newsletter.mail.message import MessageContent, OutgoingMessage, PlainBody
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.delivery.transports.http import JSON_HEADERS, HttpTransport, Item, dumps, http_failure, require_secret
from newsletter.mail.reader import parse_message
from newsletter.mail.mime import EncodedPart, FilledBody

BATCH_LIMIT = 1000  # personalizations per request


def _address(name: str, address: str) -> dict[str, str]:
    return {"email": address, "name": name} if name else {"email": address}


@dataclass(frozen=True)
class Prepared:
    content: MessageContent
    reference: str
    group: tuple | None  # equal groups (next to each other) share one request; None: alone


def _group(content: MessageContent) -> tuple | None:
    text, html = content.text, content.html
    if not (isinstance(text, FilledBody) and isinstance(html, FilledBody)):
        return None
    # The parts are alive for the whole call (the messages hold them), so their ids are stable.
    return id(text.part), id(html.part), content.sender_name, content.sender, content.subject, content.reply_to


class SendgridTransport(HttpTransport):
    name = "sendgrid"
    needs_bytes = False  # JSON fields only (OutgoingMessage.content)
    batch_limit = BATCH_LIMIT

    def __init__(self, settings: SendgridSettings, session: requests.Session | None = None) -> None:
        self.api_key = require_secret(settings.api_key, "mail.sendgrid.api_key")
        self.url = f"{settings.base_url or 'https://api.sendgrid.com'}/v3/mail/send"
        self.nonce = secrets.token_hex(6)  # no content can contain the substitution tags by chance
        super().__init__(settings.timeout, session)

    def prepare(self, message: OutgoingMessage) -> Prepared:
        content = parse_message(message)
        return Prepared(content, message.reference, _group(content))

    def send_chunk(self, items: Sequence[Item]) -> list[SendResult]:
        """Requests of one message, or of a run of messages of one template; a refused run is
        queued again message by message; after a request that came back all retry the rest is not
        tried (HttpTransport.stop_after)."""
        queue: deque[list[Prepared]] = deque()
        for group, run in itertools.groupby((item.prepared for item in items), key=lambda p: p.group):
            run = list(run)
            queue.extend([run] if group is not None and len(run) > 1 else [[prepared] for prepared in run])
        results: list[SendResult] = []
        stop: SendResult | None = None
        while queue:
            piece = queue.popleft()
            if stop is not None:
                results += [stop] * len(piece)
                continue
            got = self._send_many(piece) if len(piece) > 1 else [self._send_one(piece[0])]
            if len(piece) > 1 and got[0].outcome == Outcome.failed:  # one bad reader refuses them all
                queue.extendleft([prepared] for prepared in reversed(piece))
                continue
            results += got
            stop = self.stop_after(got)
        return results

    # -- one request per message

    def _send_one(self, prepared: Prepared) -> SendResult:
        content = prepared.content
        bodies = [("text/plain", content.text), ("text/html", content.html)]  # text/plain first
        personalization = {"to": [_address(content.recipient_name, content.recipient)]}
        payload = self._payload(content, [personalization], [(kind, body) for kind, body in bodies if body])
        payload["headers"] = content.headers
        payload["custom_args"] = {"reference": prepared.reference}
        return self._post(payload, 1)[0]

    # -- one request for many readers of one template

    def _tag(self, kind: str, name: str) -> str:
        return f"-wv{self.nonce}{kind}{name}-"

    def _tagged(self, kind: str, part: EncodedPart) -> PlainBody:
        """The part with a substitution tag in each slot."""
        out = [part.statics[0]]
        for name, chunk in zip(part.slots, part.statics[1:]):
            out += (self._tag(kind, name), chunk)
        return PlainBody("".join(out))

    def _send_many(self, run: list[Prepared]) -> list[SendResult]:
        first = run[0].content
        parts = (("t", first.text.part), ("h", first.html.part))  # type: ignore[union-attr]
        slots = [(self._tag(kind, name), part.escape, name) for kind, part in parts for name in part.names]
        personalizations = []
        for prepared in run:
            content = prepared.content
            values = content.text.values  # type: ignore[union-attr]  # both parts share one values map
            personalizations.append({
                "to": [_address(content.recipient_name, content.recipient)],
                "substitutions": {tag: escape(values[name]) for tag, escape, name in slots},
                "headers": content.headers,
                "custom_args": {"reference": prepared.reference},
            })
        bodies = [("text/plain", self._tagged("t", parts[0][1])), ("text/html", self._tagged("h", parts[1][1]))]
        return self._post(self._payload(first, personalizations, bodies), len(run))

    # -- shared

    @staticmethod
    def _payload(content: MessageContent, personalizations: list[dict], bodies: list) -> dict:
        payload = {
            "personalizations": personalizations,
            "from": _address(content.sender_name, content.sender),
            "subject": content.subject,
            "content": [{"type": kind, "value": body} for kind, body in bodies],
        }
        if content.reply_to:
            if len(content.reply_to) == 1:
                payload["reply_to"] = _address(*content.reply_to[0])
            else:
                payload["reply_to_list"] = [_address(name, address) for name, address in content.reply_to]
        return payload

    def _post(self, payload: dict, count: int) -> list[SendResult]:
        reply = self.post(self.url, data=dumps(payload),
                          headers={**JSON_HEADERS, "Authorization": f"Bearer {self.api_key}"})
        if isinstance(reply, SendResult):
            return [reply] * count
        failure = http_failure(self.name, reply)
        if failure is not None:
            return [failure] * count
        return [SendResult(Outcome.sent, provider_id=reply.headers.get("X-Message-Id") or None)] * count
