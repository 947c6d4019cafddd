"""What a bounce message says, in whatever shape a mail server sent it.

Most real bounces are not RFC 3464 reports, and many return nothing of the original message.
So one message is read three ways:

- delivery status blocks (`message/delivery-status`) wherever they are: in a
  multipart/report with or without report-type, wrapped in multipart/mixed, nested;
- otherwise flufl.bounce (Mailman's maintained detector: Postfix, Exim, qmail, Exchange,
  GroupWise, Yahoo, ... and its generic patterns) names the failed addresses, temporary
  (a delay warning) or permanent; the server's words around each address give the class;
- the original's Message-IDs from returned headers anywhere: a message/rfc822 part,
  text/rfc822-headers, or headers quoted inline in the text; and the addresses the bounce was
  delivered to (Delivered-To, X-Original-To, Envelope-To, To), where a VERP address names
  the message (newsletter/mail/verp.py).

Every failure is classified by newsletter/delivery/bounce_class.py, the one classification of every path.
Nothing here trusts the bounce: newsletter/feedback/bounces.py decides what it may be attributed to.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from flufl.bounce import all_failures

from newsletter.delivery.bounce_class import BounceClass, classify, explains
from newsletter.mail.compose import DELIVERY_HEADER
from newsletter.feedback.events import EventKind, clean_email, clean_reference

log = logging.getLogger(__name__)
ADDRESSED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "To")
_MESSAGE_ID = re.compile(r"^[ \t>]*Message-ID:[ \t]*(<[^<>\s]{1,250}>)", re.I | re.M)
_DELIVERY = re.compile(rf"^[ \t>]*{DELIVERY_HEADER}:[ \t]*(\S+)", re.I | re.M)
_CONTEXT_LINES = 8  # lines after the one naming the address that still explain it (a reason, a code)
MAX_TEXT = 200_000  # characters of one part read for headers and reasons


@dataclass
class Failure:
    address: str
    kind: EventKind
    detail: str
    occurred_at: datetime | None = None


@dataclass
class Bounce:
    id: str  # the bounce's own Message-ID, else a hash of its bytes
    failures: list[Failure] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)  # returned Message-IDs, in order found
    references: list[str] = field(default_factory=list)  # returned X-Weekly-Verdicts-Delivery values
    addressed_to: list[str] = field(default_factory=list)  # where the bounce was delivered


def _date(value: object) -> datetime | None:
    try:
        return parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError, IndexError):
        return None


def _failed_kind(action: str, status: str, diagnostic: str, words: str) -> EventKind | None:
    """`words`: the server's human-readable text about the address, read when the status block
    itself does not say why (e.g. Status 5.0.0 and a quota message in the text part)."""
    if action in ("failed", "failure"):  # "failure": seen in the wild (an X.400 gateway)
        text = diagnostic if explains(status, diagnostic) else f"{diagnostic} {words}"
        verdict = classify(status, text, permanent=True)
        return EventKind.bounced_hard if verdict == BounceClass.hard else EventKind.bounced_soft
    if action == "delayed":
        return EventKind.deferred
    if action in ("delivered", "relayed", "expanded"):
        return EventKind.delivered
    return None


def _status_blocks(msg: Message, texts: list[tuple[str, bool]]) -> list[Failure]:
    """Every per-recipient block of every message/delivery-status part in the message."""
    failures: list[Failure] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = [b for b in part.get_payload() or [] if isinstance(b, Message)]
        per_message = blocks[0] if blocks else Message()
        for block in blocks[1:]:
            # Original-Recipient is the address as the sender wrote it; Final-Recipient can be
            # where a forward led (detail keeps it).
            final = str(block.get("Original-Recipient") or block.get("Final-Recipient") or "")
            address = clean_email(final.partition(";")[2] or final)
            action = str(block.get("Action") or "").strip().lower()
            status = str(block.get("Status") or "").strip()
            diagnostic = " ".join(str(block.get("Diagnostic-Code") or "").split())
            kind = _failed_kind(action, status, diagnostic, _reason(texts, address) if action.startswith("fail") else "")
            if kind is None or "@" not in address:
                continue
            occurred = (_date(block.get("Last-Attempt-Date")) or _date(per_message.get("Arrival-Date"))
                        or _date(msg.get("Date")))
            failures.append(Failure(address, kind, f"{action} {status} {diagnostic}".strip()[:500], occurred))
    return failures


def _text_parts(msg: Message, inside_returned: bool = False) -> list[tuple[str, bool]]:
    """(text, is it inside a returned message) for every text part, decoded."""
    parts: list[tuple[str, bool]] = []
    if msg.is_multipart():
        returned = inside_returned or msg.get_content_type() == "message/rfc822"
        for sub in msg.get_payload() or []:
            if isinstance(sub, Message):
                parts += _text_parts(sub, returned)
        return parts
    if msg.get_content_maintype() not in ("text", "message"):
        return parts
    payload = msg.get_payload(decode=True)
    if not isinstance(payload, bytes):
        payload = str(msg.get_payload() or "").encode("utf-8", "replace")
    charset = msg.get_content_charset() or "utf-8"
    try:
        text = payload[:MAX_TEXT].decode(charset, "replace")
    except LookupError:
        text = payload[:MAX_TEXT].decode("latin-1")
    returned = inside_returned or msg.get_content_type() == "text/rfc822-headers"
    parts.append((text, returned))
    return parts


def _reason(texts: list[tuple[str, bool]], address: str) -> str:
    """The server's words about `address`: each line naming it and the few after it, from the parts
    that are the server's own text (not the returned message)."""
    found: list[str] = []
    needle = address.lower()
    for text, returned in texts:
        if returned:
            continue
        lines = text.splitlines()
        for at, line in enumerate(lines):
            if needle in line.lower():
                found.extend(lines[at:at + 1 + _CONTEXT_LINES])
    if not found:  # e.g. the address is named by its local part only: the first server text
        own = [text for text, returned in texts if not returned]
        found = own[0].splitlines()[:20] if own else []
    return " ".join(" ".join(found).split())[:1000]


def _detected(msg: Message, texts: list[tuple[str, bool]]) -> list[Failure]:
    """The failures flufl.bounce finds; a temporary one is a delay warning (deferred)."""
    try:
        if msg.get("From") is None:  # flufl.bounce's Yale detector fails on it and stops the scan
            msg = message_from_bytes(msg.as_bytes(), policy=policy.compat32)
            msg["From"] = "MAILER-DAEMON"
        temporary, permanent = all_failures(msg)
    except Exception as exc:  # a detector's bug must not end the run: the message is skipped
        log.warning("flufl.bounce failed on a message: %r", exc)
        return []
    failures: dict[str, Failure] = {}
    for raw, is_permanent in [(a, False) for a in temporary] + [(a, True) for a in permanent]:
        address = clean_email(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
        if "@" not in address:
            continue
        reason = _reason(texts, address)
        if is_permanent:
            verdict = classify(None, reason, permanent=True)
            kind = EventKind.bounced_hard if verdict == BounceClass.hard else EventKind.bounced_soft
        else:
            kind = EventKind.deferred
        if address not in failures or kind != EventKind.deferred:
            failures[address] = Failure(address, kind, reason[:500], _date(msg.get("Date")))
    return list(failures.values())


def _returned_ids(msg: Message, texts: list[tuple[str, bool]]) -> tuple[list[str], list[str]]:
    """Message-IDs and delivery references of returned messages: parsed returned parts first,
    then any header line quoted in any text (the bounce's own Message-ID excluded)."""
    own = str(msg.get("Message-ID") or "").strip()
    ids: list[str] = []
    references: list[str] = []
    for part in msg.walk():
        if part is not msg and part.get_content_type() == "message/rfc822":
            for inner in part.get_payload() or []:
                if isinstance(inner, Message):
                    ids.append(str(inner.get("Message-ID") or "").strip())
                    references.append(str(inner.get(DELIVERY_HEADER) or ""))
    for text, _returned in texts:
        ids += _MESSAGE_ID.findall(text)
        references += _DELIVERY.findall(text)
    unique_ids = list(dict.fromkeys(i for i in ids if i and i != own))
    unique_refs = list(dict.fromkeys(r for r in (clean_reference(x) for x in references) if r))
    return unique_ids, unique_refs


def parse_bounce(data: bytes) -> Bounce | None:
    """The bounce in a raw message; None when no failure, delay or delivery is reported in it."""
    msg = message_from_bytes(data, policy=policy.compat32)
    texts = _text_parts(msg)
    failures = _status_blocks(msg, texts) or _detected(msg, texts)
    if not failures:
        return None
    message_ids, references = _returned_ids(msg, texts)
    addressed = [clean_email(address) for name in ADDRESSED_TO
                 for _display, address in getaddresses([str(v) for v in msg.get_all(name) or []])]
    own_id = str(msg.get("Message-ID") or "").strip()
    return Bounce(
        id=own_id[:200] if own_id else hashlib.sha256(data).hexdigest()[:40],
        failures=failures,
        message_ids=message_ids,
        references=references,
        addressed_to=[a for a in dict.fromkeys(addressed) if a],
    )
