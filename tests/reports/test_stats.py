"""Per-issue figures and the vote digest from known records (SQLite and PostgreSQL)."""

from dataclasses import asdict

from newsletter.reports.stats import FIGURES, issue_stats
from newsletter.reports.votes import vote_digest
from tests.reports.known import DIGEST, FIRST, SECOND, build


def figures(row) -> dict:
    return {name: getattr(row, name) for name in FIGURES}


def test_each_issue_counts_its_own_records(sample_engine, settings):
    known = build(sample_engine, settings)
    rows = issue_stats(sample_engine)
    assert [r.id for r in rows] == [known.first, known.second]  # oldest first
    assert figures(rows[0]) == FIRST
    assert figures(rows[1]) == SECOND
    assert [r.id for r in issue_stats(sample_engine, limit=1)] == [known.second]
    assert figures(issue_stats(sample_engine, issue_id=known.first)[0]) == FIRST
    assert rows[0].rate("bounced") == "50.0%"


def test_an_issue_that_has_not_started_has_no_figures(sample_engine, settings):
    from newsletter.issues.drafting import draft_issue

    draft = draft_issue(sample_engine, settings, "2026-W46").issue
    assert issue_stats(sample_engine, issue_id=draft.id) == []
    assert issue_stats(sample_engine) == []


def test_vote_digest_per_tool(sample_engine, settings):
    known = build(sample_engine, settings)
    digest = {row.id: row for row in vote_digest(sample_engine, now=known.now)}
    row = digest[known.comparison]
    got = {"sample": row.sample, "votes_this_week": row.votes_this_week, "passes": row.passes,
           "tools": [{k: v for k, v in asdict(t).items() if k != "name"} for t in row.tools]}
    assert got == DIGEST
    # A comparison without votes: sample 0, Community % unknown (not 0), so no gap and no change.
    quiet = next(r for r in digest.values() if r.id != known.comparison and r.sample == 0)
    assert all(t.votes == 0 and t.community is None and t.gap is None and t.change is None for t in quiet.tools)
    assert all(t.panel is not None for t in quiet.tools)


def test_vote_digest_pages_and_per_issue(sample_engine, settings):
    known = build(sample_engine, settings)
    every = vote_digest(sample_engine, now=known.now)
    ids = [r.id for r in every]
    assert ids == sorted(ids, reverse=True)
    first_page = vote_digest(sample_engine, now=known.now, limit=2)
    rest = vote_digest(sample_engine, now=known.now, before_id=first_page[-1].id)
    assert [r.id for r in first_page + rest] == ids
    of_issue = vote_digest(sample_engine, now=known.now, issue_id=known.first)
    assert known.comparison in [r.id for r in of_issue] and sum(r.sample for r in of_issue) == FIRST["votes"]


def test_the_report_reads_every_counter_the_tallies_keep():
    """reports/stats.py reads the counters with plain SQL (no import of newsletter/tallies.py and
    its model): its list of counted figures must stay the one the tallies write."""
    from newsletter import tallies
    from newsletter.reports.stats import TALLIED

    assert sorted(TALLIED) == sorted(tallies.NAMES)
