"""A message's RFC 5322 bytes read back into the fields a JSON API takes.

`parse_message()`: the fields the JSON APIs want: the message's `content` when
its builder attached it (every message the pipeline makes), else its RFC 5322
bytes read once (messages from elsewhere, e.g. tests). Reading bytes, the
flat shape (one text part, or multipart/alternative of leaf parts) takes a
fast path: only the header blocks go through the stdlib parser, the bodies are
cut at the boundary and decoded with binascii (the feedparser's line-by-line
walk cost ~5 ms per 80 KB issue, more than the request).
Anything else (nesting, a part without headers, an odd boundary line) goes
through the full stdlib parser, so the result is the same either way.
"""

from __future__ import annotations

import binascii
import re
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses

from newsletter.mail.compose import DELIVERY_HEADER
from newsletter.mail.message import MessageContent, OutgoingMessage, PlainBody

# Headers the pipeline writes that a JSON API must carry over (the JSON APIs build
# their own MIME message; From/To/Subject/Date are fields or set by the provider).
PASS_THROUGH_HEADERS = (
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Message-ID",
    DELIVERY_HEADER,
)

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_SURROGATE = re.compile("[\udc80-\udcff]")


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words -> text (an undecodable word is kept as written)."""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def _raw_headers(message: Message) -> dict[str, str]:
    """Lower-case name -> the first such header's value as written, unfolded. Raw 8-bit bytes
    (kept by the parser as surrogates) are read as UTF-8."""
    found: dict[str, str] = {}
    for name, value in message.raw_items():
        key = name.lower()
        if key in found:
            continue
        text = str(value)
        if _SURROGATE.search(text):
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        found[key] = _FOLD.sub("", text).strip()
    return found


def _addresses(raw: dict[str, str], name: str) -> list[tuple[str, str]]:
    value = raw.get(name.lower())
    if not value:
        return []
    # Split the header as written (encoded words intact), then decode each display name.
    return [(_decode_words(display), address) for display, address in getaddresses([value]) if address]


def _bodies(message: Message) -> dict[str, str]:
    """The first inline text/plain and text/html parts, decoded, with LF line ends."""
    found: dict[str, str] = {}
    for part in message.walk():
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html") or kind in found or part.get_filename():
            continue
        if (part.get("Content-Disposition") or "").strip().lower().startswith("attachment"):
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, "replace")
        except LookupError:
            text = payload.decode("utf-8", "replace")
        found[kind] = text.replace("\r\n", "\n")
    return found


_HEADERS_ONLY = BytesParser(policy=policy.compat32)  # compat32: the registry policy is ~10x slower
_TEXT_KINDS = ("text/plain", "text/html")


def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    end = data.find(b"\r\n\r\n")
    return None if end < 0 else (data[:end + 2], data[end + 4:])


def _decode_part(part: Message, payload: bytes) -> str | None:
    encoding = (part.get("Content-Transfer-Encoding") or "7bit").strip().lower()
    if encoding == "quoted-printable":
        payload = binascii.a2b_qp(payload)
    elif encoding == "base64":
        try:
            payload = binascii.a2b_base64(payload)
        except binascii.Error:
            return None
    elif encoding not in ("7bit", "8bit", "binary"):
        return None
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, "replace")
    except LookupError:
        text = payload.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")


def _fast_parse(data: bytes) -> tuple[Message, dict[str, str]] | None:
    """(the top-level headers, the bodies as `_bodies` finds them) for a flat message, parsing only
    header blocks; None for any other shape (the caller then uses the full parser)."""
    split = _split_head(data)
    if split is None:
        return None
    head, body = split
    top = _HEADERS_ONLY.parsebytes(head, headersonly=True)
    kind = top.get_content_type()
    if kind in _TEXT_KINDS:
        parts = [(top, body)]
    elif kind == "multipart/alternative":
        boundary = top.get_param("boundary")
        if not isinstance(boundary, str) or not boundary:
            return None
        pieces = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("ascii", "replace"))
        if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
            return None
        parts = []
        for piece in pieces[1:-1]:
            line_end = piece.find(b"\r\n")
            if line_end < 0 or piece[:line_end].strip():  # not a delimiter line after all
                return None
            inner = _split_head(piece[line_end + 2:])
            if inner is None or inner[0].startswith(b"\r\n"):
                return None
            headers = _HEADERS_ONLY.parsebytes(inner[0], headersonly=True)
            if headers.get_content_maintype() == "multipart":
                return None
            parts.append((headers, inner[1]))
    else:
        return None
    found: dict[str, str] = {}
    for part, payload in parts:
        kind = part.get_content_type()
        if kind not in _TEXT_KINDS or kind in found or part.get_filename():
            continue
        if (part.get("Content-Disposition") or "").strip().lower().startswith("attachment"):
            continue
        text = _decode_part(part, payload)
        if text is None:
            return None
        found[kind] = text
    return top, found


def parse_message(message: OutgoingMessage, fast: bool = True, use_content: bool = True) -> MessageContent:
    """The message's fields: its `content` when the builder attached it, else read from its bytes."""
    if use_content and message.content is not None:
        return message.content
    quick = _fast_parse(message.data) if fast else None
    if quick is not None:
        parsed, bodies = quick
    else:
        parsed = BytesParser(policy=policy.compat32).parsebytes(message.data)
        bodies = _bodies(parsed)
    raw = _raw_headers(parsed)
    senders = _addresses(raw, "From")
    if not senders:
        raise ValueError("the message has no From address")
    sender_name, sender = senders[0]
    recipient_name = next((name for name, address in _addresses(raw, "To")
                           if address.lower() == message.recipient.lower()), "")
    # As written: encoded words stay encoded, the provider copies the value into its message.
    headers = {name: raw[name.lower()] for name in PASS_THROUGH_HEADERS if name.lower() in raw}
    if not bodies:
        raise ValueError("the message has neither a text/plain nor a text/html part")
    text, html = bodies.get("text/plain"), bodies.get("text/html")
    return MessageContent(
        sender_name=sender_name,
        sender=sender,
        recipient_name=recipient_name,
        recipient=message.recipient,
        subject=_decode_words(raw.get("subject", "")),
        text=None if text is None else PlainBody(text),
        html=None if html is None else PlainBody(html),
        reply_to=tuple(_addresses(raw, "Reply-To")),
        headers=headers,
    )
