"""The statistics as CSV, for a spreadsheet.

A spreadsheet runs a cell that starts with = + - @ (or a tab or carriage return) as a formula,
so a comparison title or subject someone typed as "=HYPERLINK(...)" could act on the editor's
machine when the file is opened (CSV injection). Such text cells get a leading apostrophe,
which spreadsheets show as plain text; numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from newsletter.reports.stats import FIGURES, IssueStats
from newsletter.reports.votes import ComparisonDigest

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ISSUE_HEADER = ["issue", "week", "subject", "state", "started_at", *FIGURES]
DIGEST_HEADER = ["comparison", "title", "published_at", "sample", "votes_this_week", "passes", "tool", "tool_name",
                 "votes", "tool_votes_this_week", "community_percent", "panel_ship_percent", "gap_points",
                 "change_points"]


def safe_cell(value: object) -> object:
    """Text that a spreadsheet would run as a formula, defused; anything else as it is."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
    return out.getvalue()


def issues_csv(rows: list[IssueStats]) -> str:
    return csv_text(ISSUE_HEADER, ([r.id, r.week, r.subject, r.state, r.started_at.isoformat() if r.started_at else "",
                                    *[getattr(r, name) for name in FIGURES]] for r in rows))


def digest_csv(rows: list[ComparisonDigest]) -> str:
    """One line per (comparison, tool): a flat table a spreadsheet can filter and pivot."""
    return csv_text(DIGEST_HEADER, ([c.slug, c.title, c.published_at.date().isoformat(), c.sample, c.votes_this_week,
                                     c.passes, t.slug, t.name, t.votes, t.votes_this_week, t.community, t.panel,
                                     t.gap, t.change] for c in rows for t in c.tools))
