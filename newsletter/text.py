"""Checks for text that can end up in a mail header or a log line.

A CR or LF in a header value lets an attacker add headers (or a whole body);
other control characters break parsers. Everything that reaches a header goes
through `reject_control_chars` at the edge where it enters the system.
"""

import re

# Control characters, line and paragraph separators, and Unicode noncharacters (U+FDD0..U+FDEF and
# the last two code points of every plane): XML parsers, MJML's among them, refuse those.
_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(f"\\U{plane:04x}fffe\\U{plane:04x}ffff" for plane in range(17))
_CONTROL = re.compile(f"[\\x00-\\x1f\\x7f\\u0085\\u2028\\u2029{_NONCHARACTERS}]")


def first_line(exc: BaseException, empty: str | None = None) -> str:
    """An error's first line for a log or a one-line message; `empty` (default: the exception's
    type name) when it has no text."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else (type(exc).__name__ if empty is None else empty)


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """"1 bad row", "2 bad rows": messages said "1 bad rows" and "Imported 1 comparisons"."""
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def has_control_chars(value: str) -> bool:
    # Printable ASCII (space to tilde) holds none of them: answered without the regex, which a
    # million-row import's names each paid (a twentieth of its client's time).
    if value.isascii() and value.isprintable():
        return False
    return bool(_CONTROL.search(value))


def reject_control_chars(value: str, field: str) -> str:
    """Return `value` unchanged, or raise ValueError naming the field."""
    match = _CONTROL.search(value)
    if match:
        kind = "control character" if match.group() < "\ufdd0" else "control character (a noncharacter)"
        raise ValueError(f"{field}: {kind} {match.group()!r} is not allowed")
    return value


_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def storable(value: object, limit: int) -> str:
    """Text a database column accepts, whatever a remote server sent.

    PostgreSQL refuses NUL in text and psycopg cannot encode lone surrogates (JSON "\\ud800"):
    NUL becomes U+FFFD, a lone surrogate "?", other control characters but tab and newline are
    dropped, and the result is cut to `limit` characters, so one odd field never fails a batch."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _UNSTORABLE.sub("", text.replace("\x00", "\ufffd"))[:limit]


# SpamAssassin's __BITCOIN_ID body rule (72_active.cf), copied as written: the sub-rule several
# spam rules build on (BITCOIN_SPAM_01 and the extortion rules). tests/test_tokens.py compares the
# copy with the installed rule file.
BITCOIN_ID_RULE = (r"\b(?<!=)(?:[13](?:(?:[-_=\s][a-km-zA-HJ-NP-Z1-9]){29,34}|[a-km-zA-HJ-NP-Z1-9]{29,34})"
                   r"|bc1[acdefghjklmnpqrstuvwxyz234567890]{30,90}"
                   r"|b[-_=\s]c[-_=\s]1(?:[-_=\s][acdefghjklmnpqrstuvwxyz234567890]){30,90})\b")
_BITCOIN_ID = re.compile(BITCOIN_ID_RULE)


def looks_like_bitcoin_address(text: str) -> bool:
    """True when SpamAssassin would take a word of `text` for a Bitcoin address. Our link tokens'
    signatures are random base64 and now and then match by chance (newsletter.tokens re-signs
    those): a random match in a mail's text is a spam signal we never want to send."""
    return _BITCOIN_ID.search(text) is not None
