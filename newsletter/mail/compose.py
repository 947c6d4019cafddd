"""Phase two of any mail: the message for one recipient, from a once-built MessageTemplate.

Every mail the pipeline sends (issues, test copies, confirmation/welcome/goodbye
mails, editors' notices) goes through here: the common headers (From, Subject,
Reply-To, List-Id), the Message-ID, and `assemble`, which makes the bytes
(DKIM-signed when a signer is given) and the same message as fields for the JSON
APIs. Per recipient it joins pre-encoded bytes; it never renders a template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from newsletter.config import Settings
from newsletter.mail.addresses import wire_address
from newsletter.mail.compile import CompiledEmail
from newsletter.mail.dkim import DkimSigner
from newsletter.mail.headers import address_list, address_of, domain_of, encode_address, encode_text, header_line, \
    name_and_address
from newsletter.mail.message import MessageContent, OutgoingMessage
from newsletter.mail.mime import MessageTemplate, message_template
from newsletter.tokens import keyed_digest

DELIVERY_HEADER = "X-Weekly-Verdicts-Delivery"


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
    pieces = template.render_pieces(lines, values) if mime else [b""]
    if signer is not None and mime:
        # A header line: it begins with the field name or a fold, never with "." (no stuffing).
        pieces = [signer.header(b"".join(pieces)), *pieces]
    sender_name, sender = name_and_address(settings.mail.from_address)
    text, html = template.bodies(values)
    headers = {**template.extra_headers, **{field: value for field, value in personal if field not in _NOT_CARRIED}}
    content = MessageContent(sender_name, sender, name, email, template.subject, text, html,
                             address_list(settings.mail.reply_to), headers)
    return OutgoingMessage(envelope_from or address_of(settings.mail.from_address), email, None, reference, content,
                           pieces=pieces)


def message_id(secret: str, reference: str, domain: str) -> str:
    """Stable for a delivery (a retry keeps it, so receivers can de-duplicate), unguessable."""
    return f"<{reference}.{keyed_digest(secret, reference)[:24]}@{domain}>"
