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


def has_control_chars(value: str) -> bool:
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
