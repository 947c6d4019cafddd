"""The issue's own message for one recipient: their personal links and headers.

Per recipient this signs a few tokens, formats a date and hands the generic
assembly (newsletter.mail.compose) pre-encoded pieces; it never renders a
template or compiles MJML.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache

from newsletter.config import Settings
from newsletter.mail.addresses import recipient_address
from newsletter.mail.compose import DELIVERY_HEADER, assemble, message_id
from newsletter.mail.dkim import DkimSigner, signer_for
from newsletter.mail.headers import domain_of, list_unsubscribe
from newsletter.mail.message import OutgoingMessage
from newsletter.mail.mime import MessageTemplate
from newsletter.mail.verp import envelope_sender
from newsletter.tokens import Purpose, make_token


@dataclass(frozen=True)
class IssueRecipient:
    """One reader of one issue delivery (not a subscriber row: what the message needs of one)."""

    email: str
    name: str
    subscriber_id: int
    reference: str  # stable per delivery, e.g. "i3-d42"
    token_key: str = ""  # the reader's subscriber.token_key, carried by every link


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
    settings: Settings, secret: str, template: MessageTemplate, recipient: IssueRecipient, now: datetime,
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
