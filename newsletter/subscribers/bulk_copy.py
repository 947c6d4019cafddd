"""Rows into a table at the database's own speed: COPY in text format on PostgreSQL, one
executemany on the raw driver on SQLite.

Why text COPY built here rather than psycopg's write_row: the import writes millions of small
rows whose fields are mostly plain strings, integers and a few dates; joining them into one
block of text per few thousand rows and handing PostgreSQL that block costs a fraction of a
call per row, and the server parses text COPY as fast as any format. The escaping is COPY's
text format: backslash, tab, newline and carriage return are escaped, None is \\N. Dates are
written in ISO form with their UTC offset (every datetime the import makes is aware).

On SQLite there is no COPY; the cheapest path is the driver's own executemany with tuples, its
dates turned into exactly the text SQLAlchemy's DateTime stores (the column type's own bind
processor), so rows read back through the models as if the ORM had written them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection
from sqlmodel.sql.sqltypes import UTCDateTime

NULL = "\\N"  # COPY text format's None
BLOCK = 2000  # rows per write to the COPY stream: big enough to amortise the call, small enough to stream
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def text_field(value: object) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, datetime):
        return value.isoformat(" ")
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def escape(value: str) -> str:
    """A string in COPY's text format. Two tests in C first: tab, newline and carriage return are
    not printable, backslash is the one printable character to escape; a regex search per value
    cost twice as much, and an import escapes a few million values."""
    return value if value.isprintable() and "\\" not in value else value.translate(_ESCAPES)


class Stamps(dict):
    """Datetimes (or None) in COPY's text format, each formatted once: an import's dates repeat
    (its "now", the file's join dates)."""

    def __missing__(self, moment: datetime | None) -> str:
        self[moment] = value = NULL if moment is None else moment.isoformat(" ")
        return value


def text_line(values: Sequence[object]) -> str:
    """One row in COPY's text format, with its newline."""
    return "\t".join([text_field(value) for value in values]) + "\n"


def copy_lines(connection: Connection, table: str, columns: Sequence[str], lines: Iterable[str]) -> None:
    """PostgreSQL: COPY lines already in text format (text_line) through the connection's own
    psycopg connection, so they are part of its transaction; written in blocks as they come, so
    the server inserts while the caller makes the next block."""
    raw = connection.connection.driver_connection
    block: list[str] = []
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for line in lines:
                block.append(line)
                if len(block) >= BLOCK:
                    copy.write("".join(block))
                    block.clear()
            if block:
                copy.write("".join(block))


def insert_rows(connection: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Rows (tuples in the order of `columns`) into `table`, in the connection's transaction:
    text COPY on PostgreSQL, the driver's executemany on SQLite."""
    if connection.dialect.name == "postgresql":
        copy_lines(connection, table, columns, (text_line(row) for row in rows))
        return
    stored, seen = UTCDateTime().dialect_impl(connection.dialect).bind_processor(connection.dialect), {}

    def stamp(moment: datetime) -> str:
        text = seen.get(moment)
        if text is None:
            text = seen[moment] = stored(moment)
        return text

    raw = connection.connection.driver_connection
    marks = ", ".join("?" * len(columns))
    raw.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    ([stamp(value) if type(value) is datetime else value for value in row] for row in rows))
