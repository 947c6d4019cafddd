"""Header values: checked for CR/LF/control characters, encoded only where RFC 2047 must.

Long URLs (List-Unsubscribe) are never folded into encoded words: we write
headers ourselves instead of letting email.policy fold them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from email.header import Header
from email.utils import formataddr, getaddresses, parseaddr

from newsletter.mail.addresses import wire_address
from newsletter.text import reject_control_chars

MAX_LINE = 998


def header_line(name: str, value: str) -> str:
    """One `Name: value` header (without the final CRLF), refusing anything that could inject
    headers. The only line break allowed is RFC 5322 folding ("\r\n " from our encoders)."""
    line = f"{name}: {value}"
    if value.isascii() and value.isprintable() and len(line) <= MAX_LINE:
        return line  # printable ASCII on one line: nothing to check further (most headers, every URL)
    reject_control_chars(value.replace("\r\n ", " "), f"header {name}")
    if any(len(physical) > MAX_LINE for physical in line.split("\r\n")):
        raise ValueError(f"header {name}: a line longer than {MAX_LINE} characters")
    return line


def encode_text(name: str, value: str) -> str:
    """Unstructured text (Subject): plain when ASCII, else RFC 2047 encoded words."""
    reject_control_chars(value, f"header {name}")
    if value.isascii() and len(value) + len(name) + 2 <= 78:
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


def encode_address(value: str, field: str = "address") -> str:
    """`Name <addr>` from configuration (From, Reply-To, notices), parsed once and re-encoded;
    a reader's name is never parsed: see newsletter.mail.addresses."""
    reject_control_chars(value, field)
    name, address = parseaddr(value)
    if not address or "@" not in address or len(getaddresses([value])) != 1:
        raise ValueError(f"{field}: {value!r} is not one email address")
    address = wire_address(address)  # an internationalised domain in IDNA A-labels
    if not address.isascii():
        raise ValueError(f"{field}: {address!r} must be an ASCII address")
    return formataddr((name, address), charset="utf-8")


@lru_cache(maxsize=64)
def address_of(value: str) -> str:
    """The bare address of `Name <addr>`, as the envelope carries it (IDNA domain)."""
    address = parseaddr(value)[1]
    try:
        return wire_address(address)
    except ValueError:  # not an address at all: left for the caller's own check to refuse
        return address


@lru_cache(maxsize=64)
def domain_of(value: str) -> str:
    return address_of(value).rpartition("@")[2].lower()


@lru_cache(maxsize=64)
def name_and_address(value: str) -> tuple[str, str]:
    """(display name, address) of one `Name <addr>` as configured."""
    return parseaddr(value)


@lru_cache(maxsize=64)
def address_list(value: str) -> tuple[tuple[str, str], ...]:
    """(name, address) pairs of a configured address list (Reply-To); empty for an empty value."""
    return tuple((name, address) for name, address in getaddresses([value]) if address) if value else ()


UNSUBSCRIBE_SUBJECT = "unsubscribe "  # then the signed unsubscribe token; see docs/email-quality.md


def list_unsubscribe(url: str, mailbox: str = "", token: str = "") -> str:
    """RFC 2369 List-Unsubscribe: the RFC 8058 one-click https URL first (the one Gmail and Yahoo
    use with List-Unsubscribe-Post), then, when an unsubscribe mailbox is configured, a mailto:
    whose subject carries the same signed token, for clients that only mail. Written whole,
    never folded: mailto's `?subject=` holds no characters that need quoting (tokens are URL-safe)."""
    value = f"<{url}>"
    if mailbox:
        if not token or not re.fullmatch(r"[A-Za-z0-9._~-]+", token):
            raise ValueError("List-Unsubscribe: the mailto token must be URL-safe")
        value += f", <mailto:{mailbox}?subject={UNSUBSCRIBE_SUBJECT.strip()}%20{token}>"
    return value


def unsubscribe_token_of(subject: str) -> str | None:
    """The token of an unsubscribe mail sent through the mailto: link (`unsubscribe TOKEN`, as the
    reader's client wrote it, perhaps behind a `Re:`); the caller verifies it like the https one."""
    found = re.search(r"(?:^|\s)unsubscribe\s+([A-Za-z0-9._~-]{16,})\s*$", subject.strip(), re.I)
    return found.group(1) if found else None
