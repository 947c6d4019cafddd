"""Phase two: the message for one recipient, from a once-built MessageTemplate.

Per recipient this signs two tokens, formats a date and joins pre-encoded
bytes; it never renders a template or compiles MJML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache

from newsletter.config import Settings
from newsletter.delivery.transports.base import MessageContent, OutgoingMessage
from newsletter.issues.render import CompiledEmail
from newsletter.mail.dkim import DkimSigner, signer_for
from newsletter.mail.addresses import recipient_address, wire_address
from newsletter.mail.headers import (address_list, address_of, domain_of, encode_address, encode_text, header_line,
                                     list_unsubscribe, name_and_address)
from newsletter.mail.mime import MessageTemplate, line_dots, message_template
from newsletter.mail.verp import envelope_sender
from newsletter.tokens import Purpose, keyed_digest, make_token

DELIVERY_HEADER = "X-Weekly-Verdicts-Delivery"


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    subscriber_id: int
    reference: str  # stable per delivery, e.g. "i3-d42"
    token_key: str = ""  # the reader's subscriber.token_key, carried by every link


def list_id(settings: Settings) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", settings.site.name.lower()).strip("-") or "newsletter"
    return f'"{settings.site.name}" <{slug}.{domain_of(settings.mail.from_address)}>'


def common_headers(settings: Settings, subject: str, list_headers: bool = True) -> list[str]:
    headers = [
        header_line("From", encode_address(settings.mail.from_address, "mail.from_address")),
        header_line("Subject", encode_text("Subject", subject)),
    ]
    if settings.mail.reply_to:
        headers.append(header_line("Reply-To", encode_address(settings.mail.reply_to, "mail.reply_to")))
    if list_headers:
        headers.append(header_line("List-Id", list_id(settings)))
    return headers


def build_template(settings: Settings, compiled: CompiledEmail, list_headers: bool = True) -> MessageTemplate:
    extra = {"List-Id": list_id(settings)} if list_headers else {}
    return message_template(common_headers(settings, compiled.subject, list_headers), compiled.text, compiled.html,
                            compiled.subject, extra)


# Fields of their own in a JSON API (To), or set by the provider (Date).
_NOT_CARRIED = frozenset({"To", "Date"})


def assemble(settings: Settings, template: MessageTemplate, name: str, email: str,
             personal: list[tuple[str, str]], values: Mapping[str, str], reference: str,
             signer: DkimSigner | None = None, mime: bool = True, envelope_from: str | None = None) -> OutgoingMessage:
    """One recipient's message from a template: its bytes (DKIM-signed when a signer is given) and
    the same message as fields for the JSON APIs. `personal` is the recipient's own headers,
    (name, value as written). `mime=False` (for a transport that reads only the fields) leaves
    the bytes empty; the headers are still checked. `envelope_from`: MAIL FROM (VERP), by default
    the From address. Envelope and fields carry the address's wire form (IDNA domain), like the
    To header."""
    email = wire_address(email)
    lines = [header_line(field, value) for field, value in personal]
    data, dots = template.render(lines, values) if mime else (b"", [])
    if signer is not None and mime:
        signature = signer.header(data)
        data = signature + data
        dots = line_dots(signature) + [at + len(signature) for at in dots]
    sender_name, sender = name_and_address(settings.mail.from_address)
    text, html = template.bodies(values)
    headers = {**template.extra_headers, **{field: value for field, value in personal if field not in _NOT_CARRIED}}
    content = MessageContent(sender_name, sender, name, email, template.subject, text, html,
                             address_list(settings.mail.reply_to), headers)
    return OutgoingMessage(envelope_from or address_of(settings.mail.from_address), email, data, reference, content,
                           tuple(dots))


def message_id(secret: str, reference: str, domain: str) -> str:
    """Stable for a delivery (a retry keeps it, so receivers can de-duplicate), unguessable."""
    return f"<{reference}.{keyed_digest(secret, reference)[:24]}@{domain}>"


def recipient_links(settings: Settings, secret: str, subscriber_id: int, key: str = "") -> dict[str, str]:
    """The reader's personal links; `key` is their token_key (links name the person, not the id)."""
    base = settings.site.base_url
    return {
        "unsubscribe_url": f"{base}/unsubscribe/{make_token(secret, Purpose.unsubscribe, subscriber_id, key)}",
        "preferences_url": f"{base}/preferences/{make_token(secret, Purpose.preferences, subscriber_id, key)}",
        "vote_token": make_token(secret, Purpose.vote, subscriber_id, key),
        "track_token": make_token(secret, Purpose.track, subscriber_id, key)
        if settings.tracking.opens or settings.tracking.clicks else "",
    }


_UNSET = object()


@lru_cache(maxsize=4)
def _date(now: datetime) -> str:
    """A batch shares one `now`: format it once."""
    return format_datetime(now)


def issue_message(
    settings: Settings, secret: str, template: MessageTemplate, recipient: Recipient, now: datetime,
    signer: DkimSigner | None | object = _UNSET, mime: bool = True,
) -> tuple[OutgoingMessage, str]:
    """The message for one subscriber, and its Message-ID. With `[mail.dkim] enabled` it is signed
    (DKIM-Signature first) by `signer`, by default the process's cached signer (key read once).
    `mime=False`: fields only (see `assemble`)."""
    links = recipient_links(settings, secret, recipient.subscriber_id, recipient.token_key)
    msg_id = message_id(secret, recipient.reference, domain_of(settings.mail.from_address))
    personal = [
        ("To", recipient_address(recipient.name, recipient.email)),
        ("Date", _date(now)),
        ("Message-ID", msg_id),
        ("List-Unsubscribe", list_unsubscribe(links["unsubscribe_url"], settings.mail.unsubscribe_mailbox,
                                              links["unsubscribe_url"].rpartition("/")[2])),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        (DELIVERY_HEADER, recipient.reference),
    ]
    if signer is _UNSET:
        signer = signer_for(settings)
    message = assemble(settings, template, recipient.name, recipient.email, personal,
                       {"email": recipient.email, **links}, recipient.reference, signer,  # type: ignore[arg-type]
                       mime, envelope_sender(settings, secret, recipient.reference))
    return message, msg_id
