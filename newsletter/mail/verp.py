"""VERP: an envelope sender per message, so a bounce names the message it is about by the
address it is delivered to, even when it returns nothing of the original.

With `[mail] verp = true` and `[mail] bounce_address = "bounces@bounce.example"`, the message
with reference i3-d42 leaves with MAIL FROM:<bounces+i3-d42.<16 hex>@bounce.example>. The hex
is a keyed digest of the reference under the secret key (the key ring of newsletter/tokens.py,
so rotated keys still verify), so nobody can make an address that names a delivery; it is
lower case and digits only, because some servers lower-case the local part. The bounce mailbox
reads it back from Delivered-To, X-Original-To, Envelope-To or To (newsletter/feedback/bounce_parse.py).

Only the transports that own the envelope use it (smtp, file); an HTTP provider sets its own
return path and reports bounces through its webhook.
"""

from __future__ import annotations

import re

from newsletter.tokens import keyed_digest, verify_digest

from newsletter.config import Settings
from newsletter.mail.headers import address_of

DIGEST_LENGTH = 16
ENVELOPE_TRANSPORTS = ("smtp", "file")
_VERP = re.compile(r"\+((?:i\d{1,18}-d\d{1,18}|t\d{1,18}))\.([0-9a-f]{16})@", re.I)


def _digest(secret: str, reference: str) -> str:
    return keyed_digest(secret, f"verp:{reference}")[:DIGEST_LENGTH]


def verp_address(bounce_address: str, secret: str, reference: str) -> str:
    """bounces@bounce.example + i3-d42 -> bounces+i3-d42.<digest>@bounce.example"""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{reference}.{_digest(secret, reference)}@{domain}"


def verp_active(settings: Settings) -> bool:
    """Every message we send carries a VERP envelope sender (so a bounce without one is not ours)."""
    mail = settings.mail
    return bool(mail.verp and mail.bounce_address and mail.transport in ENVELOPE_TRANSPORTS)


def envelope_sender(settings: Settings, secret: str, reference: str) -> str:
    """The envelope sender (MAIL FROM, Return-Path) of the message with this reference."""
    mail = settings.mail
    if mail.transport not in ENVELOPE_TRANSPORTS or not mail.bounce_address:
        return address_of(mail.from_address)  # an HTTP provider: SES sends from it (a verified identity)
    if mail.verp:
        return verp_address(address_of(mail.bounce_address), secret, reference)
    return address_of(mail.bounce_address)


def reference_in_address(secret: str, address: str) -> str | None:
    """The reference a VERP address names, when its digest checks out under our key ring."""
    match = _VERP.search((address or "").lower())
    if not match:
        return None
    reference, digest = match.groups()
    return reference if verify_digest(secret, f"verp:{reference}", digest, DIGEST_LENGTH) else None
