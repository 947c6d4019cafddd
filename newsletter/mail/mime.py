"""Message assembly with bodies encoded once.

Each part (text, HTML) of a message is a Slotted template. Its static chunks
are quoted-printable encoded once, each ending on a line boundary (a soft
break "=\r\n" when the chunk ends mid-line), so a recipient's copy is the
static bytes joined with the QP encoding of a few short slot values. The
result decodes to exactly the filled template.
"""

from __future__ import annotations

import binascii
import html
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from newsletter.slots import Slotted

_BARE_LF = re.compile(rb"(?<!\r)\n")
CRLF = b"\r\n"


_QP_SAFE = re.compile(r"[!-<>-~]*")  # printable ASCII but "=": stands for itself in quoted-printable


def qp_encode(text: str) -> bytes:
    """Quoted-printable for a piece that starts at column 0 and ends at a line boundary."""
    if _QP_SAFE.fullmatch(text):
        # The common per-recipient value (a URL, an address): only soft line breaks to add.
        data = text.encode("ascii")
        return b"=\r\n".join(data[i:i + 75] for i in range(0, len(data), 75)) + b"=\r\n" if data else b""
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    encoded = _BARE_LF.sub(CRLF, binascii.b2a_qp(data, quotetabs=False, istext=True, header=False))
    if encoded and not encoded.endswith(CRLF):
        encoded += b"=" + CRLF
    return encoded


@dataclass(frozen=True)
class EncodedPart:
    """A MIME body part whose static chunks are already encoded."""

    headers: bytes
    chunks: list[bytes]
    slots: list[str]
    escape: Callable[[str], str]
    names: frozenset[str]

    def body(self, values: Mapping[str, str]) -> bytes:
        # A slot can recur (the vote token sits in every comparison): encode each value once.
        encoded = {name: qp_encode(self.escape(values[name])) for name in self.names}
        out = [self.chunks[0]]
        for name, chunk in zip(self.slots, self.chunks[1:]):
            out += (encoded[name], chunk)
        return b"".join(out)


def encode_part(content_type: str, template: Slotted) -> EncodedPart:
    escape = (lambda value: html.escape(value, quote=True)) if content_type == "text/html" else str
    headers = (
        f'Content-Type: {content_type}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii")
    return EncodedPart(headers, [qp_encode(chunk) for chunk in template.statics], template.slots, escape,
                       frozenset(template.slots))


@dataclass(frozen=True)
class MessageTemplate:
    """Everything of a message that is the same for every recipient, encoded once."""

    common_headers: list[str]  # e.g. From, Subject, List-Id (already checked lines)
    parts: list[EncodedPart]
    boundary: str

    def render(self, personal_headers: list[str], values: Mapping[str, str]) -> bytes:
        """The full message for one recipient: header lines, then the multipart body."""
        out = [line.encode("utf-8") + CRLF for line in personal_headers]
        out += [line.encode("utf-8") + CRLF for line in self.common_headers]
        out.append(b"MIME-Version: 1.0\r\n")
        out.append(f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n\r\n'.encode("ascii"))
        for part in self.parts:
            out.append(f"--{self.boundary}\r\n".encode("ascii"))
            out.append(part.headers)
            out.append(part.body(values))
            out.append(CRLF)  # the CRLF before a boundary belongs to the boundary (RFC 2046)
        out.append(f"--{self.boundary}--\r\n".encode("ascii"))
        return b"".join(out)


def new_boundary() -> str:
    # "=_" can never occur in quoted-printable output, so it cannot collide with a body.
    return f"=_wv_{secrets.token_hex(12)}"


def message_template(common_headers: list[str], text: Slotted, html_part: Slotted) -> MessageTemplate:
    """multipart/alternative: text first, HTML last (the preferred part comes last)."""
    return MessageTemplate(
        common_headers,
        [encode_part("text/plain", text), encode_part("text/html", html_part)],
        new_boundary(),
    )
