"""From an uploaded CSV (any platform's export) to the rows the importer judges.

The bytes are decoded (UTF-8 with or without a BOM, UTF-16 with a BOM; otherwise Windows-1252,
which is what spreadsheet programs write as "Latin-1"), the delimiter is read from the header
row (comma, semicolon or tab), the platform is detected from the header (platforms.py), and each
column goes to a target chosen by the platform or by the editor. Every mapped row then goes
through the importer's own rules (importing.parse_row): the same validation, the same line
numbers, the same refusals. What the platform recorded about the opt-in travels as Evidence.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from newsletter.db import utcnow
from newsletter.subscribers.importing import Evidence, Row, judge, parse_date, parse_row
from newsletter.subscribers.platforms import PLATFORMS, SINGLE, TARGETS, Platform, default_mapping, detect, \
    translate_status
from newsletter.subscribers.service import InvalidInput, unneutralised

MAX_UPLOAD = 64 * 1024 * 1024  # bytes: about a million rows of a platform export
DELIMITERS = ",;\t"
BROKEN = "\x00broken"  # the record key that carries a CSV syntax error (no header name holds a NUL)
TRUE, FALSE = {"true", "yes", "y", "1", "t"}, {"false", "no", "n", "0", "f"}


@dataclass(frozen=True)
class Upload:
    """A decoded file and how it was read."""

    text: str
    encoding: str
    delimiter: str
    header: list[str]


def decode(data: bytes) -> tuple[str, str]:
    """The text and the name of the encoding it was read with."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"file: not valid UTF-16 text (byte {exc.start})") from None
    try:
        return data.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "Windows-1252 (Latin-1)"
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"file: neither UTF-8 nor Latin-1 text (byte {exc.start}); save it as CSV UTF-8") \
            from None


def _delimiter(first_line: str) -> str:
    """The separator the header row uses most (outside quotes); a comma when there is none."""
    counts, quoted = dict.fromkeys(DELIMITERS, 0), False
    for char in first_line:
        if char == '"':
            quoted = not quoted
        elif char in counts and not quoted:
            counts[char] += 1
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def read_upload(data: bytes) -> Upload:
    """Decode, find the delimiter and the header; InvalidInput names what is wrong with the file."""
    if not data.strip():
        raise InvalidInput("file: is empty")
    if len(data) > MAX_UPLOAD:
        raise InvalidInput(f"file: larger than {MAX_UPLOAD // (1024 * 1024)} MiB; split it into parts")
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidInput("file: is not a CSV text file (it holds binary data; export as CSV, not as a workbook)")
    text, encoding = decode(data)
    return parse_text(text, encoding, _delimiter(text.lstrip().split("\n", 1)[0]))


def parse_text(text: str, encoding: str, delimiter: str) -> Upload:
    """The header row of decoded text (a stored job's file is read again this way)."""
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    except csv.Error as exc:
        raise InvalidInput(f"file: the header row is not CSV ({exc})") from None
    header = [name.strip() for name in header]
    if not any(header):
        raise InvalidInput("file: the first row must name the columns (a header row)")
    if len(set(name.casefold() for name in header)) != len(header):
        raise InvalidInput("file: two columns of the header row have the same name")
    return Upload(text, encoding, delimiter, header)


def platform_for(upload: Upload, key: str = "auto") -> Platform:
    """The platform named (`--from`, the API's `platform`) or, for "auto", the detected one."""
    if key in ("", "auto"):
        return detect(upload.header)
    if key not in PLATFORMS:
        raise InvalidInput(f"platform: {key!r} is not one of auto, {', '.join(PLATFORMS)}")
    return PLATFORMS[key]


def check_mapping(upload: Upload, mapping: dict[str, str]) -> dict[str, str]:
    """The mapping for every column of the header; InvalidInput names the column and the reason."""
    unknown = [name for name in mapping if name not in upload.header]
    if unknown:
        raise InvalidInput(f"mapping: {unknown[0]!r} is not a column of the file")
    full = {name: mapping.get(name, "ignore") for name in upload.header}
    seen: dict[str, str] = {}
    for name, target in full.items():
        if target not in TARGETS:
            raise InvalidInput(f"mapping: {name}: {target!r} is not one of {', '.join(TARGETS)}")
        if target in SINGLE and target in seen:
            raise InvalidInput(f"mapping: {name}: {TARGETS[target]!r} is already the column {seen[target]!r}")
        seen[target] = name
    if "email" not in seen:
        raise InvalidInput("mapping: no column is the email address")
    return full


def mapping_for(upload: Upload, platform: Platform, mapping: dict[str, str] | None = None) -> dict[str, str]:
    """The editor's mapping if given, else the platform's default; checked either way."""
    return check_mapping(upload, mapping if mapping else default_mapping(platform, upload.header))


def _cell(value: str | None) -> str:
    """A cell as text; a quote our own export put before a formula-like value is taken off again."""
    return unneutralised((value or "").strip())


def _flag(target: str, value: str) -> bool | None:
    key = value.casefold()
    if not key:
        return None
    if key in TRUE or key in FALSE:
        return key in TRUE
    raise InvalidInput(f"{target}: {value[:40]!r} is not true or false")


def _status(platform: Platform, fields: dict[str, str]) -> str:
    """Our status from whichever columns say it; the worst wins (bounced over unsubscribed over active)."""
    status = ""
    if fields.get("status"):
        status, refused = translate_status(platform, fields["status"])
        if refused:
            raise InvalidInput(f"status: {fields['status']!r}: {refused}")
    if _flag("subscribed", fields.get("subscribed", "")) is False:
        status = status if status in ("bounced", "complained") else "unsubscribed"
    if _flag("email_disabled", fields.get("email_disabled", "")):
        status = status if status in ("bounced", "complained") else "unsubscribed"
    if fields.get("unsubscribed_at") and status in ("", "active"):
        status = "unsubscribed"
    if fields.get("cleaned_at"):
        status = "bounced"
    return status


def _ip(target: str, value: str) -> str:
    if not value:
        return ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidInput(f"{target}: {value[:45]!r} is not an IP address") from None


def _evidence(platform: Platform, fields: dict[str, str], now: datetime) -> Evidence | None:
    optin_at = parse_date("optin_at", fields.get("optin_at", ""), now)
    optin_ip, confirm_ip = _ip("optin_ip", fields.get("optin_ip", "")), _ip("confirm_ip", fields.get("confirm_ip", ""))
    if not (optin_at or optin_ip or confirm_ip or fields.get("confirmed_at")):
        return None
    confirmed_at = parse_date("confirmed_at", fields.get("confirmed_at", ""), now)
    return Evidence(platform.label, optin_at, optin_ip, confirmed_at, confirm_ip)


def map_row(platform: Platform, mapping: dict[str, str], line: int, raw: dict[str, str], known: dict[str, str],
            now: datetime) -> Row:
    """One record through the mapping and then the importer's own rules; an error names the
    file's column as well as what it was read as ("OPTIN_TIME (optin_at): ...")."""
    if raw.get(BROKEN):
        raise InvalidInput(raw[BROKEN])
    fields = {target: _cell(raw.get(name)) for name, target in mapping.items() if target != "ignore"}
    try:
        evidence = _evidence(platform, fields, now) if platform.key != "newsletter" else None
        row = parse_row(line, _native(platform, fields), "active", known, now)
    except InvalidInput as exc:
        target, _, reason = str(exc).partition(": ")
        column = next((name for name, chosen in mapping.items() if chosen == target), "")
        raise InvalidInput(f"{column} ({target}): {reason}" if column and column != target else str(exc)) from None
    return replace(row, evidence=evidence)


def _native(platform: Platform, fields: dict[str, str]) -> dict[str, str]:
    """The columns importing.parse_row reads, from the mapped fields."""
    name = fields.get("name") or " ".join(part for part in (fields.get("first_name"), fields.get("last_name")) if part)
    native = {"email": fields.get("email", ""), "name": name, "topics": fields.get("topics", ""),
              "status": _status(platform, fields),
              "created_at": fields.get("created_at") or fields.get("optin_at") or fields.get("confirmed_at", ""),
              "confirmed_at": fields.get("confirmed_at", ""),
              "unsubscribed_at": fields.get("unsubscribed_at") or fields.get("cleaned_at", ""),
              "paused_until": fields.get("paused_until", "")}
    if native["status"] in ("active", ""):
        native["unsubscribed_at"] = ""  # a cleaned date on a bounced row is not an unsubscription
    return native


def mapped_rows(upload: Upload, platform: Platform, mapping: dict[str, str], categories: Collection[str]
                ) -> Iterator[tuple[int, Row | None, str]]:
    """Every data record in file order: (line, row, "") or (line, None, "line N: field: reason")."""
    known = {category.casefold(): category for category in categories}
    reader = csv.reader(io.StringIO(upload.text), delimiter=upload.delimiter)
    now = utcnow()
    yield from judge(_records(reader, upload.header), len(upload.header),
                     lambda line, raw: map_row(platform, mapping, line, raw, known, now))


def _records(reader, header: list[str]) -> Iterator[tuple[int, dict]]:
    """Data records with the line each starts on (a quoted field may span lines), as csv.DictReader
    makes them (extra values under None, missing ones None); a broken quote ends the file with an
    error naming its line instead of a crash. Blank lines are skipped here, not by DictReader: it
    skipped them inside one read, so the line taken before the read named the blank line."""
    next(reader, None)  # the header row
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, {BROKEN: f"not CSV from here on ({exc}); check the quotes"}
            return
        raw: dict = dict(zip(header, record))
        if len(record) > len(header):
            raw[None] = record[len(header):]
        raw.update((name, None) for name in header[len(record):])
        if any((value or "").strip() for key, value in raw.items() if key is not None) or None in raw:
            yield start, raw


def samples(upload: Upload, count: int = 3) -> dict[str, list[str]]:
    """The first few values of each column, so the editor sees what a column holds (and the decoding)."""
    reader = csv.reader(io.StringIO(upload.text), delimiter=upload.delimiter)
    next(reader, None)
    found: dict[str, list[str]] = {name: [] for name in upload.header}
    try:
        for _, record in zip(range(count), reader):
            for name, value in zip(upload.header, record):
                if value.strip():
                    found[name].append(value.strip()[:60])
    except csv.Error:
        pass
    return found
