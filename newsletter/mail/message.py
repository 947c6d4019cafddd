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
from collections.abc import Callable, Sequence
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


class OutgoingMessage:
    """One message to one recipient: the envelope and the RFC 5322 bytes (with `content`, the
    same as fields, when the pipeline built it).

    The bytes are given whole (`data`) or, as the builder makes them, as `pieces` whose
    concatenation is the message, each beginning a line and ending at the end of one (CRLF line
    ends only). Pieces are never joined for SMTP: they go out with one gathering write, and their
    dot-stuffed form (`stuffed`, None when no line begins with ".") is made per piece by the
    builder, so the transport scans nothing. Joining 80 KB per message, and the fresh memory for
    each copy of a 500-message batch, was a quarter of a worker's CPU. `data` joins them (once)
    for a transport that wants one bytes object (file, Mailgun, SES) or a DKIM signer."""

    __slots__ = ("envelope_from", "recipient", "reference", "_content", "_content_from", "line_dots", "pieces",
                 "stuffed", "_data", "_size")

    def __init__(self, envelope_from: str, recipient: str, data: bytes | None = None, reference: str = "",
                 content: MessageContent | None = None, line_dots: tuple[int, ...] | None = None, *,
                 pieces: Sequence[bytes] | None = None, stuffed: Sequence[bytes] | None = None,
                 content_from: Callable[[], MessageContent] | None = None, size: int | None = None) -> None:
        """`size`: the length of `pieces` in bytes when the builder knows it (else summed on first use)."""
        if data is None and pieces is None:
            raise TypeError("a message needs its data or its pieces")
        self.envelope_from, self.recipient, self.reference = envelope_from, recipient, reference
        # The same message as fields, when the builder made it, or how to make it on first use
        # (`content_from`): a message sent over SMTP never needs them.
        self._content, self._content_from = content, content_from
        # Where `data` has a "." at the start of a line (offsets), when the caller knows: SMTP must
        # double those dots. Given only for CRLF-only `data`. None: unknown, SMTP looks for itself.
        self.line_dots = line_dots
        self.pieces, self.stuffed = pieces, stuffed
        self._data = data
        self._size = size if pieces is not None else None

    @property
    def content(self) -> MessageContent | None:
        if self._content is None and self._content_from is not None:
            self._content, self._content_from = self._content_from(), None
        return self._content

    @property
    def data(self) -> bytes:
        """The complete message (CRLF line ends), joined from its pieces on first use."""
        if self._data is None:
            self._data = b"".join(self.pieces or ())
        return self._data

    @property
    def size(self) -> int:
        """Bytes in the message: the builder's figure, else summed over the pieces once (~2 us for
        80 pieces); SMTP asks for it twice (SIZE, and how much its gathered write must take)."""
        if self._size is None:
            self._size = len(self._data) if self._data is not None else sum(map(len, self.pieces or ()))
        return self._size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OutgoingMessage):
            return NotImplemented
        return (self.envelope_from, self.recipient, self.reference, self.content, self.data) == (
            other.envelope_from, other.recipient, other.reference, other.content, other.data)

    def __hash__(self) -> int:  # consistent with __eq__: equal messages share these fields
        return hash((self.envelope_from, self.recipient, self.reference))

    def __repr__(self) -> str:
        return (f"OutgoingMessage(envelope_from={self.envelope_from!r}, recipient={self.recipient!r}, "
                f"reference={self.reference!r}, size={self.size})")
