"""Message assembly with bodies encoded once.

Each part (text, HTML) of a message is a Slotted template. Its static chunks
are quoted-printable encoded once, each ending on a line boundary (a soft
break "=\r\n" when the chunk ends mid-line), so a recipient's copy is the
static bytes joined with the QP encoding of a few short slot values. The
result decodes to exactly the filled template.

Every piece (a header line, a static chunk, an encoded value) starts at the
beginning of a line and ends at the end of one, and no line of any of them
begins with "." (a leading dot is written "=2E": `qp_value`), so SMTP's
dot-stuffing (RFC 5321 4.5.2) never applies: the transport sends the pieces as
they are, without scanning 80 KB per recipient or making a stuffed copy.

The same chunks are also JSON-string encoded once (JSON escapes character by
character, so the pieces joined are the whole escaped), for the JSON APIs:
`MessageTemplate.bodies()` gives a recipient's bodies as `FilledBody`, whose
text and JSON literal are joined only when a transport asks for them.
"""

from __future__ import annotations

import binascii
from operator import itemgetter
import html
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from newsletter.mail.slots import Slotted

_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
CRLF = b"\r\n"


def stuff(piece: bytes) -> bytes:
    """`piece` (beginning a line) with each line-leading "." doubled, as SMTP's DATA carries it."""
    stuffed = piece.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


def line_dots(piece: bytes, start: int = 0) -> list[int]:
    """Offsets (plus `start`) of each "." that begins a line in `piece`, a piece that itself
    begins a line."""
    found = [start] if piece.startswith(b".") else []
    at = piece.find(b"\r\n.")
    while at >= 0:
        found.append(start + at + 2)
        at = piece.find(b"\r\n.", at + 2)
    return found


def qp_encode(text: str) -> bytes:
    """Quoted-printable for a piece that starts at column 0 and ends at a line boundary."""
    if text.isascii() and text.isprintable() and "=" not in text and " " not in text:
        # The common per-recipient value (a URL, an address): printable ASCII but "=" and space,
        # which stands for itself; only soft line breaks to add (string tests in C: a regex and a
        # generator here were a tenth of building a message).
        data = text.encode("ascii")
        if len(data) <= 75:
            return data + b"=\r\n" if data else b""
        if len(data) <= 150:  # a personal link: one soft break
            return b"%b=\r\n%b=\r\n" % (data[:75], data[75:])
        return b"=\r\n".join([data[i:i + 75] for i in range(0, len(data), 75)]) + b"=\r\n"
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    encoded = _BARE_LF.sub(CRLF, binascii.b2a_qp(data, quotetabs=False, istext=True, header=False))
    if data.count(b"\r") != data.count(CRLF):  # b2a_qp passes a lone CR through: encode it, keep CRLF-only
        encoded = _BARE_CR.sub(b"=0D", encoded)
    if encoded and not encoded.endswith(CRLF):
        encoded += b"=" + CRLF
    return encoded


_QP_UNIT = re.compile(rb"=[0-9A-F]{2}|[^=]", re.S)


def undotted(encoded: bytes) -> bytes:
    """Quoted-printable `encoded` (CRLF lines) with every line-leading "." written as "=2E", which
    decodes to the same "."; a line that grows past 76 characters is broken again with soft
    breaks. A static chunk then never needs SMTP's dot-stuffing (the issue's CSS has lines that
    begin with "."), so a message's pieces are sent as built, with no second, stuffed copy."""
    if not (encoded.startswith(b".") or b"\r\n." in encoded):
        return encoded
    lines = []
    for line in encoded.split(b"\r\n"):
        if not line.startswith(b"."):
            lines.append(line)
            continue
        soft = line.endswith(b"=")
        current = b""
        for unit in _QP_UNIT.findall(line[:-1] if soft else line):
            if unit == b"." and not current:
                unit = b"=2E"
            if len(current) + len(unit) > 75:
                lines.append(current + b"=")
                current = b"=2E" if unit == b"." else unit
            else:
                current += unit
        lines.append(current + (b"=" if soft else b""))
    return b"\r\n".join(lines)


def qp_value(text: str) -> bytes:
    """`qp_encode` with no line that begins with "." (`undotted`): what every static chunk and
    every recipient's value is encoded as, so no message the builder makes needs dot-stuffing.
    A value begins a line (its chunk ended at one), and a link's "." can fall at a soft break."""
    encoded = qp_encode(text)
    return undotted(encoded) if encoded[:1] == b"." or b"\r\n." in encoded else encoded


@dataclass(frozen=True)
class EncodedPart:
    """A MIME body part whose static chunks are already encoded."""

    headers: bytes
    chunks: list[bytes]
    slots: list[str]
    escape: Callable[[str], str]
    names: frozenset[str]
    statics: list[str]  # the static chunks as text, LF line ends
    json_chunks: list[bytes]  # the same, each JSON-string escaped (no quotes), UTF-8

    def pieces(self, values: Mapping[str, str], encoded: dict[str, bytes], out: list[bytes]) -> None:
        """Appends the encoded body to `out` as pieces, each beginning a line and ending at the end
        of one (nothing is joined: a message is sent as the list of its pieces). `encoded` is the
        message's cache of encoded values, shared by its parts (the same URL in the text and the
        HTML part is encoded once): escaped text -> its `qp_value`."""
        hits = []
        for name in self._order:
            text = self.escape(values[name])
            hit = encoded.get(text)
            if hit is None:
                hit = encoded[text] = qp_value(text)
            hits.append(hit)
        # chunks[0] value chunks[1] value … picked in C from the chunks followed by the values.
        out += self._pick(self.chunks + hits)

    def layout(self) -> list[bytes | str]:
        """chunks[0] slot[0] chunks[1] …: the encoded static chunks and, between them, the names
        of the slots (newsletter.mail.personal compiles a whole message from it)."""
        out: list[bytes | str] = [self.chunks[0]]
        for name, chunk in zip(self.slots, self.chunks[1:]):
            out += (name, chunk)
        return out

    def __post_init__(self) -> None:
        order = tuple(sorted(self.names))
        picks = [0]
        for n, name in enumerate(self.slots):
            picks += (len(self.chunks) + order.index(name), n + 1)
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_pick", (lambda seq: (seq[0],)) if len(picks) == 1 else itemgetter(*picks))

    def _join(self, values: Mapping[str, str], chunks: list, encode: Callable) -> list:
        """chunks[0] value chunks[1] … with each value escaped and encoded once (a slot can recur:
        the vote token sits in every comparison)."""
        encoded = {name: encode(self.escape(values[name])) for name in self.names}
        out = [chunks[0]]
        for name, chunk in zip(self.slots, chunks[1:]):
            out += (encoded[name], chunk)
        return out

    def text(self, values: Mapping[str, str]) -> str:
        """The part filled in, decoded: what a reader of the MIME body gets back."""
        return "".join(self._join(values, self.statics, str))

    def json(self, values: Mapping[str, str]) -> list[bytes]:
        """`text(values)` as a JSON string literal, in pieces: the pre-escaped chunks and values."""
        return [b'"', *self._join(values, self.json_chunks, _json_escaped), b'"']


def _json_escaped(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")


@dataclass(frozen=True)
class FilledBody:
    """One part for one recipient; the text or its JSON literal is joined when asked for
    (a JSON API wants only the literal, a test may want the text)."""

    part: EncodedPart
    values: Mapping[str, str]

    @property
    def text(self) -> str:
        return self.part.text(self.values)

    @property
    def json(self) -> bytes:
        return b"".join(self.part.json(self.values))

    def json_pieces(self) -> list[bytes]:
        return self.part.json(self.values)


def encode_part(content_type: str, template: Slotted) -> EncodedPart:
    escape = (lambda value: html.escape(value, quote=True)) if content_type == "text/html" else str
    headers = (
        f'Content-Type: {content_type}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii")
    statics = [chunk.replace("\r\n", "\n") for chunk in template.statics]
    chunks = [qp_value(chunk) for chunk in template.statics]
    return EncodedPart(headers, chunks, template.slots, escape, frozenset(template.slots), statics,
                       [_json_escaped(chunk) for chunk in statics])


@dataclass(frozen=True)
class MessageTemplate:
    """Everything of a message that is the same for every recipient, encoded once."""

    common_headers: list[str]  # e.g. From, Subject, List-Id (already checked lines)
    parts: list[EncodedPart]  # text/plain, then text/html
    boundary: str
    subject: str = ""  # as text, for the JSON APIs
    extra_headers: dict[str, str] = field(default_factory=dict)  # of common_headers, what a JSON API must carry

    def __post_init__(self) -> None:
        # What every recipient's copy shares around the bodies, encoded once.
        head = [line.encode("utf-8") + CRLF for line in self.common_headers]
        head.append(b"MIME-Version: 1.0\r\n")
        if len(self.parts) == 1:
            head.append(self.parts[0].headers)
            openings, closing = [b""], b""
        else:
            head.append(f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n\r\n'.encode("ascii"))
            # The CRLF before a boundary belongs to the boundary (RFC 2046).
            openings = [(b"\r\n" if n else b"") + f"--{self.boundary}\r\n".encode("ascii") + part.headers
                        for n, part in enumerate(self.parts)]
            closing = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        object.__setattr__(self, "_head", b"".join(head))
        object.__setattr__(self, "_openings", openings)
        object.__setattr__(self, "_closing", closing)

    def render_pieces(self, personal_headers: list[str], values: Mapping[str, str]) -> list[bytes]:
        """The full message for one recipient (header lines, then the body: multipart, or the one
        text part of a text-only mail; CRLF line ends only) as pieces, each beginning a line and
        ending at the end of one. No line begins with "." (header lines begin with a field name or
        a fold, bodies are `qp_value`s), so SMTP sends the pieces as they are, never a dot-stuffed
        copy. Nothing is joined: a copy of 80 KB per message, and the fresh memory for each of a
        batch's 500 copies, cost a quarter of a worker's time."""
        out = [("\r\n".join(personal_headers) + "\r\n").encode("utf-8") if personal_headers else b"",
               self._head]
        encoded: dict[str, bytes] = {}
        for opening, part in zip(self._openings, self.parts):
            if opening:
                out.append(opening)
            part.pieces(values, encoded, out)
        if self._closing:
            out.append(self._closing)
        return out

    def layout(self) -> list[bytes | tuple[int, str]]:
        """The message after its personal header lines: static bytes and, where a recipient's value
        goes, (part index, slot name), in order (compiled once by newsletter.mail.personal)."""
        out: list[bytes | tuple[int, str]] = [self._head]
        for index, (opening, part) in enumerate(zip(self._openings, self.parts)):
            out.append(opening)
            out += [item if isinstance(item, bytes) else (index, item) for item in part.layout()]
        out.append(self._closing)
        return out

    def render(self, personal_headers: list[str], values: Mapping[str, str]) -> tuple[bytes, list[int]]:
        """`render_pieces` joined, and the offsets of the dots that begin a line in it (none)."""
        data = b"".join(self.render_pieces(personal_headers, values))
        return data, line_dots(data)

    def bodies(self, values: Mapping[str, str]) -> tuple[FilledBody, FilledBody | None]:
        """(text, HTML) for one recipient, as the JSON APIs take them; no HTML for a text-only mail."""
        text, html_part = self.parts[0], (self.parts[1] if len(self.parts) > 1 else None)
        return FilledBody(text, values), None if html_part is None else FilledBody(html_part, values)


def new_boundary() -> str:
    # "=_" can never occur in quoted-printable output, so it cannot collide with a body.
    return f"=_wv_{secrets.token_hex(12)}"


def message_template(common_headers: list[str], text: Slotted, html_part: Slotted | None = None, subject: str = "",
                     extra_headers: dict[str, str] | None = None) -> MessageTemplate:
    """multipart/alternative: text first, HTML last (the preferred part comes last). Without
    `html_part`, a text/plain mail (the editors' notices)."""
    parts = [encode_part("text/plain", text)]
    if html_part is not None:
        parts.append(encode_part("text/html", html_part))
    return MessageTemplate(common_headers, parts, new_boundary(), subject, extra_headers or {})
