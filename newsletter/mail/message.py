"""The message types every mail shares, whoever builds or sends it.

A message the pipeline builds carries `content` beside its bytes: the same
message in the fields a JSON API takes (sender, subject, bodies, extra headers),
made from the same template as the bytes. JSON providers use it instead of
parsing the bytes back, and its bodies come with their JSON encoding spliced
from pieces encoded once per issue: re-reading and re-encoding an 80 KB message
cost ~2 ms, ten times the rest of the per-message work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Protocol

from newsletter.mail.addresses import display_name


class Body(Protocol):
    """One body (text or HTML) of one message, with LF line ends."""

    @property
    def text(self) -> str: ...

    @property
    def json(self) -> bytes:
        """`text` as a JSON string literal (quotes included), UTF-8."""
        ...

    def json_pieces(self) -> list[bytes]:
        """`json` in pieces, for a caller that joins them into something larger (one copy of
        80 KB per message saved)."""
        ...


@dataclass(frozen=True)
class PlainBody:
    """A body held as text (e.g. read back from a message's bytes)."""

    text: str

    @property
    def json(self) -> bytes:
        return json.dumps(self.text, ensure_ascii=False).encode("utf-8")

    def json_pieces(self) -> list[bytes]:
        return [self.json]


def format_address(name: str, address: str) -> str:
    """`Name <addr>` for a JSON API (UTF-8 as is; quoted when the name has specials). A name with
    "=?" is written as RFC 2047 encoded words: parsers decode encoded words even inside quotes, so
    only encoding it keeps the name what the reader typed."""
    if not name:
        return address
    if "=?" in name:
        return f"{display_name(name)} <{address}>"
    if any(c in name for c in '()<>[]:;@\\,."'):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


@dataclass(frozen=True)
class MessageContent:
    """A message in the fields JSON APIs take; they build their own MIME from it."""

    sender_name: str
    sender: str  # From (the header, not the envelope)
    recipient_name: str
    recipient: str  # the envelope recipient
    subject: str
    text: Body | None
    html: Body | None
    reply_to: tuple[tuple[str, str], ...] = ()  # (name, address) pairs
    headers: dict[str, str] = field(default_factory=dict)  # extra headers to carry over, as written

    @property
    def from_header(self) -> str:
        return format_address(self.sender_name, self.sender)

    @property
    def to_header(self) -> str:
        return format_address(self.recipient_name, self.recipient)

    @property
    def reply_to_header(self) -> str:
        return ", ".join(format_address(name, address) for name, address in self.reply_to)


@dataclass(frozen=True)
class OutgoingMessage:
    envelope_from: str
    recipient: str
    data: bytes  # a complete RFC 5322 message with CRLF line ends
    reference: str  # stable per delivery: file names, idempotency keys, webhook matching
    content: MessageContent | None = None  # the same message as fields, when the builder made it
    # Where `data` has a "." at the start of a line (offsets), when the builder knows: SMTP must
    # double those dots, and finding them in 80 KB per message cost more than the rest of a send.
    # Given only for CRLF-only `data`. None: unknown, the SMTP transport looks for itself.
    line_dots: tuple[int, ...] | None = None
