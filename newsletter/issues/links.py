"""The issue's own message for one recipient: their personal links and headers.

Per recipient this signs a few tokens and two digests, writes the header lines and hands
the rest to a PersonalMail (newsletter.mail.personal), made once per template: it never
renders a template or compiles MJML, and joins nothing but a few short strings.
`issue_mail` gives the builder for a template (kept on it), `issue_message` one message.
"""

from __future__ import annotations

import html
from datetime import datetime
from email.utils import format_datetime
from typing import NamedTuple

from newsletter.config import Settings
from newsletter.mail.addresses import display_name, wire_address
from newsletter.mail.compose import DELIVERY_HEADER
from newsletter.mail.dkim import DkimSigner, signer_for
from newsletter.mail.headers import domain_of, header_line, list_unsubscribe
from newsletter.mail.message import OutgoingMessage
from newsletter.mail.mime import MessageTemplate
from newsletter.mail.personal import PersonalMail
from newsletter.mail.verp import DIGEST_LENGTH, envelope_sender, verp_active
from newsletter.text import reject_control_chars
from newsletter.tokens import Purpose, keyed_digester, stamp_now, token_signer, token_value


class IssueRecipient(NamedTuple):
    """One reader of one issue delivery (not a subscriber row: what the message needs of one).
    A named tuple: immutable like a frozen dataclass, made in a third of its time (one per message)."""

    email: str
    name: str
    subscriber_id: int
    reference: str  # stable per delivery, e.g. "i3-d42"
    token_key: str = ""  # the reader's subscriber.token_key, carried by every link


_LINKS = (Purpose.unsubscribe, Purpose.preferences, Purpose.vote)
_TOKEN_SLOTS = ("unsubscribe_url", "preferences_url", "vote_token", "track_token")


def recipient_links(settings: Settings, secret: str, subscriber_id: int, key: str = "",
                    stamp: int | None = None) -> dict[str, str]:
    """The reader's personal links; `key` is their token_key (links name the person, not the id).
    All are signed at `stamp` (default: now)."""
    base = settings.site.base_url
    track = settings.tracking.opens or settings.tracking.clicks
    unsubscribe, preferences, vote, *tracked = token_signer(secret).sign_all(
        token_value(subscriber_id, key), stamp_now() if stamp is None else stamp,
        (*_LINKS, Purpose.track) if track else _LINKS)
    return {"unsubscribe_url": f"{base}/unsubscribe/{unsubscribe}", "preferences_url": f"{base}/preferences/{preferences}",
            "vote_token": vote, "track_token": tracked[0] if tracked else ""}


_UNSET = object()


class IssueMail:
    """Every issue message of one template, settings and key ring: what does not depend on the
    reader (domains, the List-Unsubscribe mailbox, signers, the Date of the batch) is found
    once, so a message is its tokens, digests and one format of its header lines."""

    def __init__(self, settings: Settings, secret: str, template: MessageTemplate, signer: DkimSigner | None,
                 mime: bool) -> None:
        self.settings, self.secret = settings, secret
        # Links and tokens are URL-safe base64, digits, "-", "." and "_" after the base URL:
        # nothing HTML escapes when the base URL has nothing either.
        plain = frozenset(_TOKEN_SLOTS) if html.escape(settings.site.base_url) == settings.site.base_url else frozenset()
        self.personal = PersonalMail(settings, template, signer, mime, plain=plain)
        self.tokens = token_signer(secret)
        self.purposes = (*_LINKS, Purpose.track) if settings.tracking.opens or settings.tracking.clicks else _LINKS
        self.links = (f"{settings.site.base_url}/unsubscribe/", f"{settings.site.base_url}/preferences/")
        self.digest = keyed_digester(secret)
        self.domain = domain_of(settings.mail.from_address)
        self.mailbox = settings.mail.unsubscribe_mailbox
        self.verp = verp_active(settings)
        self._envelope = envelope_sender(settings, secret, "") if not self.verp else ""
        self._date: tuple[datetime | None, str] = (None, "")
        # The reader's List-Unsubscribe line differs only by its token: checked once, with the
        # longest token a link can carry (header_line refuses what could not go into a header).
        longest = "9" * 18 + "-" + "f" * 16 + "." + "A" * 16 + "." + "A" * 43
        header_line("List-Unsubscribe", list_unsubscribe(f"{settings.site.base_url}/unsubscribe/{longest}",
                                                         self.mailbox, longest))

    def date(self, now: datetime) -> str:
        """A batch shares one `now`: formatted once."""
        if self._date[0] != now:
            self._date = (now, format_datetime(now))
        return self._date[1]

    def message(self, recipient: IssueRecipient, now: datetime, stamp: int | None = None) -> tuple[OutgoingMessage, str]:
        """The message for one reader, and its Message-ID; tokens signed at `stamp` (default now)."""
        reference = recipient.reference
        if not (reference.isascii() and reference.isprintable()):
            reject_control_chars(reference, f"header {DELIVERY_HEADER}")
        unsubscribe, preferences, vote, *tracked = self.tokens.sign_all(
            token_value(recipient.subscriber_id, recipient.token_key), stamp_now() if stamp is None else stamp,
            self.purposes)
        unsubscribe_url = self.links[0] + unsubscribe
        values = {"email": recipient.email, "unsubscribe_url": unsubscribe_url,
                  "preferences_url": self.links[1] + preferences, "vote_token": vote,
                  "track_token": tracked[0] if tracked else ""}
        msg_id = f"<{reference}.{self.digest.hex(reference)[:24]}@{self.domain}>"
        address = wire_address(recipient.email)
        to = f"{display_name(recipient.name)} <{address}>" if recipient.name else address
        date, unsubscribe_header = self.date(now), list_unsubscribe(unsubscribe_url, self.mailbox, unsubscribe)
        fields = (("To", to), ("Date", date), ("Message-ID", msg_id), ("List-Unsubscribe", unsubscribe_header),
                  ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"), (DELIVERY_HEADER, reference))
        # Only To needs header_line's checks: every other value is ours, checked once in __init__.
        head = (f"{header_line('To', to)}\r\nDate: {date}\r\nMessage-ID: {msg_id}\r\n"
                f"List-Unsubscribe: {unsubscribe_header}\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                f"{DELIVERY_HEADER}: {reference}\r\n")
        if self.verp:
            envelope = envelope_sender(self.settings, self.secret, reference)
        else:
            envelope = self._envelope
        message = self.personal.message(head, fields, values, recipient.name, address, reference, envelope)
        return message, msg_id


def issue_mail(settings: Settings, secret: str, template: MessageTemplate, signer: DkimSigner | None | object = _UNSET,
               mime: bool = True) -> IssueMail:
    """The builder for this template, made on first use and kept on the template (a send's
    templates live as long as the send). `signer` defaults to the process's cached DKIM signer."""
    if signer is _UNSET:
        signer = signer_for(settings)
    mails = template.__dict__.setdefault("_issue_mails", {})
    key = (id(settings), secret, id(signer), mime)
    found = mails.get(key)
    if found is None or found.settings is not settings or found.personal.signer is not signer:
        if len(mails) >= 8:  # a long-lived template (a process's welcome mail) meets many settings objects
            mails.clear()
        found = mails[key] = IssueMail(settings, secret, template, signer, mime)  # type: ignore[arg-type]
    return found


def issue_message(
    settings: Settings, secret: str, template: MessageTemplate, recipient: IssueRecipient, now: datetime,
    signer: DkimSigner | None | object = _UNSET, mime: bool = True, stamp: int | None = None,
) -> tuple[OutgoingMessage, str]:
    """The message for one subscriber, and its Message-ID. With `[mail.dkim] enabled` it is signed
    (DKIM-Signature first) by `signer`, by default the process's cached signer (key read once).
    `mime=False`: fields only (see `compose.assemble`)."""
    return issue_mail(settings, secret, template, signer, mime).message(recipient, now, stamp)
