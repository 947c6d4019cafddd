"""A reader's name and address as they go on the wire (docs/addresses.md).

A display name is data, never parsed: whatever a reader typed (commas, quotes, angle
brackets, "@", emoji, right-to-left text) is written as one RFC 5322 quoted-string or as
RFC 2047 encoded words, so no name can add or change a recipient. The address is the one
stored at signup (checked there by email-validator); on the wire its domain is written in
IDNA (UTS-46) A-labels, and a local part that is not ASCII needs SMTPUTF8 (RFC 6531).
"""

from __future__ import annotations

import re
from email.charset import Charset
from email.header import Header

import idna

from newsletter.text import reject_control_chars

_UTF8 = Charset("utf-8")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")  # atoms a parser reads back unchanged
# Characters that can never stand in an address as written into a header or SMTP path.
_NOT_IN_ADDRESS = re.compile(r'[\s<>,;"()\[\]\\]')


def display_name(name: str) -> str:
    """`name` as the phrase before `<addr>`: plain atoms as they are; other ASCII as a quoted-string
    (backslash and quote escaped); anything else, and ASCII that looks like an encoded word (a
    parser would decode it), as RFC 2047 encoded words, folded with CRLF + space."""
    if not (name.isascii() and name.isprintable()):  # printable ASCII has no control character
        reject_control_chars(name, "name")
    if _PLAIN_NAME.fullmatch(name):
        return name
    if name.isascii() and "=?" not in name:
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    word = _UTF8.header_encode(name)  # one encoded word: the common case, and 4x faster than Header
    if len(word) <= 75:  # RFC 2047's limit for one encoded word
        return word
    return Header(name, "utf-8", header_name="To").encode(linesep="\r\n")


def wire_address(email: str) -> str:
    """The stored address as SMTP and headers carry it: the domain in IDNA A-labels (user@bücher.de
    → user@xn--bcher-kva.de); the local part as stored. ValueError when it cannot be written."""
    if not (email.isascii() and email.isprintable()):  # printable ASCII has no control character
        reject_control_chars(email, "email")
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or _NOT_IN_ADDRESS.search(email):
        raise ValueError(f"email: {email!r} cannot be written into a header")
    if domain.isascii():
        return email
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError as exc:
        raise ValueError(f"email: the domain of {email!r} is not a valid internationalised domain ({exc})") from None


def stored_form(address: str) -> str:
    """An address as it came back from the wire (a bounce, a provider's event) in the form readers
    are stored in: lower-cased, an A-label ("xn--") domain decoded to Unicode. Unchanged when the
    domain is not valid IDNA (it then matches no reader, as before)."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at or "xn--" not in domain:
        return address.strip().lower()
    try:
        return f"{local}@{idna.decode(domain)}"
    except idna.IDNAError:
        return address.strip().lower()


def needs_smtputf8(address: str) -> bool:
    """A wire address whose local part is not ASCII can only go to a server offering SMTPUTF8."""
    return not address.isascii()


def recipient_address(name: str, email: str) -> str:
    """`To` for one reader: the name as data (display_name), the address in its wire form."""
    address = wire_address(email)
    return f"{display_name(name)} <{address}>" if name else address
