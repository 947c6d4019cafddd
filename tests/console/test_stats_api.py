"""The statistics API over known records: exact figures, the vote digest with cursor paging,
404 and 422 in the API's error shape."""

from __future__ import annotations

from tests.reports.known import DIGEST, FIRST, SECOND, build


def test_stats_over_time(console):
    known = build(console.engine, console.settings)
    body = console.client().get("/api/v1/stats", headers=console.bearer("read")).json()
    assert [i["id"] for i in body["issues"]] == [known.first, known.second]
    assert {name: body["issues"][0][name] for name in FIRST} == FIRST
    assert {name: body["issues"][1][name] for name in SECOND} == SECOND
    assert len(body["weeks"]) == 8 and all(w["net"] == w["joined"] - w["left"] for w in body["weeks"])
    one = console.client().get("/api/v1/stats?last=1", headers=console.bearer("read")).json()
    assert [i["id"] for i in one["issues"]] == [known.second]


def test_one_issue_with_its_digest(console):
    known = build(console.engine, console.settings)
    body = console.client().get(f"/api/v1/stats/issues/{known.first}", headers=console.bearer("read")).json()
    assert {name: body["issue"][name] for name in FIRST} == FIRST
    comparison = next(c for c in body["comparisons"] if c["id"] == known.comparison)
    assert [{k: t[k] for k in DIGEST["tools"][0]} for t in comparison["tools"]] == DIGEST["tools"]
    assert (comparison["sample"], comparison["passes"], comparison["votes_this_week"]) == (4, 1, 2)
    missing = console.client().get("/api/v1/stats/issues/999999", headers=console.bearer("read"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = console.client().get("/api/v1/stats/issues/0", headers=console.bearer("read"))
    assert bad.status_code == 422 and "issue_id" in bad.json()["error"]["fields"]


def test_vote_digest_pages_by_cursor(console):
    known = build(console.engine, console.settings)
    headers = console.bearer("read")
    seen, cursor = [], ""
    while True:
        page = console.client().get("/api/v1/stats/comparisons", params={"limit": 2, "cursor": cursor},
                                    headers=headers).json()
        seen += [c["id"] for c in page["items"]]
        assert len(page["items"]) <= 2
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and known.comparison in seen and len(seen) == len(set(seen)) > 2
    forged = console.client().get("/api/v1/stats/comparisons?cursor=eyJpZCI6OTk5OTk5OTk5OTk5fQ", headers=headers)
    assert forged.status_code == 422 and forged.json()["error"]["fields"] == {"cursor": "not a cursor from a previous page"}
