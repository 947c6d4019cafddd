"""CSV exports parse as CSV, carry every figure, and defuse text a spreadsheet would run."""

import csv
import io

from newsletter.reports.export import DIGEST_HEADER, ISSUE_HEADER, csv_text, digest_csv, issues_csv, safe_cell
from newsletter.reports.stats import issue_stats
from newsletter.reports.votes import vote_digest
from tests.reports.known import FIRST, build


def parse(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_formula_cells_get_an_apostrophe():
    for text in ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "=HYPERLINK(\"http://x\")"]:
        assert safe_cell(text) == "'" + text
    assert safe_cell("Plain, with a comma") == "Plain, with a comma"
    assert safe_cell(-25) == -25 and safe_cell(None) == ""
    rows = list(csv.reader(io.StringIO(csv_text(["a", "b"], [["=cmd|' /C calc'!A0", -3]]))))
    assert rows == [["a", "b"], ["'=cmd|' /C calc'!A0", "-3"]]


def test_issue_and_digest_exports(sample_engine, settings):
    from newsletter.db import session_scope
    from newsletter.issues.models import Issue

    known = build(sample_engine, settings)
    with session_scope(sample_engine) as session:
        session.get(Issue, known.first).subject = '=HYPERLINK("https://evil.example","click")'
    rows = parse(issues_csv(issue_stats(sample_engine)))
    assert list(rows[0]) == ISSUE_HEADER
    first = rows[0]
    assert first["subject"].startswith("'=HYPERLINK(")
    assert {name: int(first[name]) for name in FIRST} == FIRST
    digest = parse(digest_csv(vote_digest(sample_engine, now=known.now)))
    assert list(digest[0]) == DIGEST_HEADER
    ideogram = next(r for r in digest if r["tool"] == "ideogram")
    assert (ideogram["votes"], ideogram["community_percent"], ideogram["gap_points"], ideogram["change_points"]) \
        == ("1", "25", "-25", "-25")
    silent = next(r for r in digest if r["sample"] == "0")
    assert silent["community_percent"] == "" and silent["gap_points"] == ""
