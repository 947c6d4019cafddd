"""The bulk import's fast judging (import_fast.judged_rows_fast) gives every record exactly the
verdict of the row path's (importing.judged_rows): the same Row (stored address, name, topics,
status, dates) for a good record, the same "line N: field: reason" for a bad one, the same line
numbers. Hypothesis writes files with plain, Unicode, IDN, quoted and broken addresses, names
with commas, quotes and control characters, known and unknown topics, odd statuses and dates,
short and long records and blank lines."""

from __future__ import annotations

import csv
import io

from hypothesis import example, given, settings
from hypothesis import strategies as st

from newsletter.subscribers.import_fast import judged_rows_fast
from newsletter.subscribers.importing import judged_rows

KNOWN = {"developer tools": "Developer Tools", "design & media": "Design & Media"}
LOCALS = st.one_of(st.sampled_from(["ada", "Ada.Lovelace", "a+tag", "x_y%z", "o'brien", '"quoted, local"', "josé",
                                    "a..b", ".a", "a.", "", "a b", "ü", "a\x01b", "a" * 65]),
                   st.text(alphabet="aZ09._%+-'\"é, \t\x00", max_size=12))
DOMAINS = st.sampled_from(["example.com", "EXAMPLE.org", "xn--bcher-kva.example", "bücher.example", "localhost",
                           "a..b.com", "-bad.com", "[127.0.0.1]", "ex_ample.com", "example.com.", "e.123",
                           "a" * 250 + ".com", "x\x1f.com", "例え.jp", ""])
EMAILS = st.one_of(st.builds(lambda local, domain, pad: f"{pad}{local}@{domain}{pad}", LOCALS, DOMAINS,
                             st.sampled_from(["", " ", "\t"])),
                   st.sampled_from(["not-an-address", "", "  ", "a@b@c.com", "\x85a@example.com"]))
NAMES = st.one_of(st.sampled_from(["", "Ada", 'Doe, Jane "JD"', " padded ", "Line\nbreak", "tab\there", "x" * 101,
                                   " " + "y" * 100 + " ", "Ümlaut", "back\\slash", "\u2028sep"]),
                  st.text(max_size=8))
TOPICS = st.sampled_from(["", "Developer Tools", "developer tools;Design & Media", "Design & Media|Design & Media",
                          "Knitting", " ; ", "Developer Tools;" * 21, "x\x00"])
STATUSES = st.sampled_from(["", "active", "ACTIVE ", "unsubscribed", "bounced", "complained", "pending", "gone"])
DATES = st.sampled_from(["", "2024-01-02", "2021-03-02T10:00:00+02:00", "2024-13-01", "yesterday", "2999-01-01",
                         " 2020-05-05 ", "2024-01-02T03:04:05"])
RECORDS = st.lists(st.one_of(st.tuples(EMAILS, NAMES, TOPICS, STATUSES, DATES, DATES, DATES),
                             st.sampled_from([(), ("only@example.com",), ("a@example.com", "A", "", "", "", "", "",
                                                                            "extra")])), max_size=12)
HEADER = ("email", "name", "topics", "status", "created_at", "confirmed_at", "unsubscribed_at")


def _file(records: list[tuple], header: tuple[str, ...] = HEADER) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for record in records:
        writer.writerow(record)  # () is a blank line
    return out.getvalue()


def _agree(data: str) -> None:
    slow = list(judged_rows(data, "active", KNOWN))
    fast = list(judged_rows_fast(data, "active", KNOWN))
    assert fast == slow


@settings(max_examples=400, derandomize=True, deadline=None)
@given(RECORDS)
@example([("Ada@Example.COM", "Ada", "", "", "", "", ""), ("ada@example.com", "Again", "", "", "", "", "")])
@example([("anna@xn--bcher-kva.example", "Anna", "", "", "", "", ""), ("anna@bücher.example", "", "", "", "", "", "")])
@example([(), (), ("late@example.com", "", "", "", "", "", "")])
def test_fast_judging_agrees_with_the_row_path(records: list[tuple]) -> None:
    _agree(_file(records))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.permutations(HEADER[:5]), RECORDS)
def test_fast_judging_agrees_for_any_column_order(header: list[str], records: list[tuple]) -> None:
    _agree(_file([record[:5] for record in records], tuple(header)))


def test_a_bad_header_is_refused_the_same_way() -> None:
    for data in ("", "name\nAda\n", "email,colour\na@example.com,red\n"):
        errors = []
        for judge in (judged_rows, judged_rows_fast):
            try:
                list(judge(data, "active", KNOWN))
            except Exception as exc:  # the same InvalidInput with the same text from both
                errors.append((type(exc), str(exc)))
        assert len(errors) == 2 and errors[0] == errors[1], data
