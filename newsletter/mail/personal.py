"""One template's per-recipient assembly, with everything that is not about the recipient done once.

`compose.assemble` is the general path: per message it checks and encodes every header line,
walks both parts slot by slot and builds the fields a JSON API takes. For an issue sent to a
million readers that was most of a worker's CPU. A `PersonalMail` is made once per template
(an issue or one of its variants) and message kind: the static pieces of the whole message
(headers after the personal ones, part openings, encoded chunks, the closing boundary) are laid
out once, with the positions of the slots, so per recipient only the few distinct slot values
are quoted-printable encoded and the piece list is picked in C from the statics and them.
The JSON fields are made only if a transport asks (`OutgoingMessage.content` is lazy).

The result is byte for byte what `assemble` makes from the same header lines and values
(tests/mail/test_personal.py holds it to that for varied readers).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from functools import partial
from operator import itemgetter

from newsletter.config import Settings
from newsletter.mail.dkim import DkimSigner
from newsletter.mail.headers import address_list, address_of, name_and_address
from newsletter.mail.message import MessageContent, OutgoingMessage
from newsletter.mail.mime import MessageTemplate, qp_value

_HTML_SPECIAL = re.compile(r"[&<>\"']")


def _escape_html(value: str) -> str:
    """html.escape (quote=True), skipped for the common value that needs none (a link, a token)."""
    return html.escape(value, quote=True) if _HTML_SPECIAL.search(value) else value


class PersonalMail:
    """Builds one recipient's message from a MessageTemplate: their header lines (text, CRLF
    ended, already checked) go first, then the template's static bytes with their slot values."""

    def __init__(self, settings: Settings, template: MessageTemplate, signer: DkimSigner | None = None,
                 mime: bool = True, not_carried: frozenset[str] = frozenset({"To", "Date"}),
                 plain: frozenset[str] = frozenset()) -> None:
        """`plain`: the slots whose values the caller knows HTML escaping leaves as they are (links
        it made): the HTML part then shares the text part's encoding of them without a check."""
        self.template, self.signer, self.mime, self.not_carried = template, signer, mime, not_carried
        # Every distinct (part's escape, slot name) a message fills, in a fixed order: per message
        # their encodings follow the statics and the header lines in the tuple pieces are picked from.
        escapes = [None if part.escape is str else _escape_html for part in template.parts]
        statics: list[bytes] = []
        keys: list[tuple] = []
        order: list[tuple[str, int]] = [("head", 0)]  # the personal header lines come first
        for item in template.layout():
            if isinstance(item, bytes):
                if item:
                    order.append(("static", len(statics)))
                    statics.append(item)
                continue
            key = (None if item[1] in plain else escapes[item[0]], item[1])
            if key not in keys:
                keys.append(key)
            order.append(("value", keys.index(key)))
        # One tuple per message: the statics, the header lines, the values; the pieces picked from it.
        at = {"static": 0, "head": len(statics), "value": len(statics) + 1}
        self._statics, self._keys = tuple(statics), tuple(keys)
        # A message's size without summing its ~80 pieces: the statics', and each value's as often
        # as it occurs (SMTP asks for it twice: SIZE, and how much its gathered write must take).
        self._static_size = sum(map(len, statics))
        self._uses = tuple(sum(1 for kind, index in order if kind == "value" and index == key)
                           for key in range(len(keys)))
        # The head and the template's own header block: always two or more, so a tuple comes back.
        self._pick = itemgetter(*[at[kind] + index for kind, index in order])
        self._sender = name_and_address(settings.mail.from_address)
        self._reply_to = address_list(settings.mail.reply_to)
        self._from = address_of(settings.mail.from_address)

    def pieces(self, head: bytes, values: Mapping[str, str]) -> tuple[tuple[bytes, ...], int]:
        """The message's pieces: `head` (the recipient's header lines), then the template's; and
        their length in bytes."""
        cache: dict[str, bytes] = {}
        encoded = [head]
        size = self._static_size + len(head)
        for (escape, name), uses in zip(self._keys, self._uses):
            text = values[name] if escape is None else escape(values[name])
            hit = cache.get(text)
            if hit is None:
                if 0 < len(text) <= 75 and text.isascii() and text.isprintable() and text[:1] != "." \
                        and "=" not in text and " " not in text:
                    hit = text.encode("ascii") + b"=\r\n"  # a token: qp_value's own fast path, inline
                else:
                    hit = qp_value(text)
                cache[text] = hit
            encoded.append(hit)
            size += uses * len(hit)
        return self._pick(self._statics + tuple(encoded)), size

    def message(self, head: str, fields: Sequence[tuple[str, str]], values: Mapping[str, str], name: str,
                email: str, reference: str, envelope_from: str | None = None) -> OutgoingMessage:
        """One recipient's message. `head`: their header lines as written (each ending in CRLF),
        `fields`: the same as (name, value) for the JSON APIs; `email`: the address's wire form."""
        if not self.mime:
            pieces: Sequence[bytes] = (b"",)
            size = 0
        else:
            pieces, size = self.pieces(head.encode("utf-8"), values)
            if self.signer is not None:
                # A header line: it begins with the field name or a fold, never with "." (no stuffing).
                signature = self.signer.header(b"".join(pieces))
                pieces, size = (signature, *pieces), size + len(signature)
        return OutgoingMessage(envelope_from or self._from, email, None, reference, pieces=pieces, size=size,
                               content_from=partial(self.content, name, email, fields, values))

    def content(self, name: str, email: str, fields: Sequence[tuple[str, str]],
                values: Mapping[str, str]) -> MessageContent:
        """The message as the fields a JSON API takes (made when a transport asks for them)."""
        template = self.template
        text, html_body = template.bodies(values)
        headers = {**template.extra_headers,
                   **{field: value for field, value in fields if field not in self.not_carried}}
        return MessageContent(self._sender[0], self._sender[1], name, email, template.subject, text, html_body,
                              self._reply_to, headers)
